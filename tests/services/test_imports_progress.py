"""services.imports.ProgressCounter: the one progress reporter of imports and restores."""

from __future__ import annotations

from services.imports import ProgressCounter


def test_counts_up_to_the_total_and_never_past_it():
    calls: list[tuple[int, int]] = []
    counter = ProgressCounter(lambda done, total: calls.append((done, total)), 10)
    counter.advance(4)
    counter.advance(8)
    counter.finish()
    assert calls == [(4, 10), (10, 10), (10, 10)]


def test_reports_every_nth_row_only():
    calls: list[tuple[int, int]] = []
    counter = ProgressCounter(lambda done, total: calls.append((done, total)), 7)
    for _ in range(7):
        counter.advance(1, every=3)
    counter.finish()
    assert calls == [(3, 7), (6, 7), (7, 7)]


def test_a_part_reports_inside_its_share_of_the_whole():
    calls: list[tuple[int, int]] = []
    counter = ProgressCounter(lambda done, total: calls.append((done, total)), 100)
    counter.advance(40)
    part = counter.part(20)
    part(5, 20)
    part(50, 20)  # a step that overshoots stays within its share
    counter.advance(20)
    assert calls == [(40, 100), (45, 100), (60, 100), (60, 100)]


def test_nothing_to_report_to_is_fine():
    counter = ProgressCounter(None, 0)
    counter.advance(3)
    counter.part(2)(1, 2)
    counter.finish()
