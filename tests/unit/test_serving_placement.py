"""Where the model server runs a call: on its event loop only while calls are known quick."""

from __future__ import annotations

from imm.serving.server import INLINE_BELOW, _Placement


def test_unknown_calls_count_as_slow() -> None:
    assert not _Placement().inline


def test_quick_calls_move_onto_the_loop_and_slow_ones_move_off() -> None:
    placement = _Placement()
    for _ in range(200):
        placement.record(INLINE_BELOW / 20)
    assert placement.inline
    for _ in range(3):
        placement.record(INLINE_BELOW * 100)
    assert not placement.inline
