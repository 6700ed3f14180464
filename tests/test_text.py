"""The one rule for control characters in text, shared by every door."""

from __future__ import annotations

import pytest

from mangahub.domain.errors import ValidationFailed
from mangahub.domain.text import bad_characters, check_text, single_line


@pytest.mark.parametrize("value", ["a\x00", "a\x1b[2J", "a\x7f", "a\x9b2J", "a\rb", "a\nb", "a\tb"])
def test_single_line_fields_refuse_every_control_character(value: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        check_text(value, "device")
    assert info.value.details == [{"field": "device", "message": bad_characters(value)}]


@pytest.mark.parametrize("value", ["a\x00", "a\x1b", "a\rb", "a\x85"])
def test_free_text_refuses_controls_other_than_line_feed_and_tab(value: str) -> None:
    assert bad_characters(value, multiline=True) is not None


def test_free_text_keeps_line_feed_and_tab_and_any_printable_text() -> None:
    for value in ("line\n\tindented", "漫画 ワンピース", "emoji 🙂", "<b>html</b>"):
        assert check_text(value, "content", multiline=True) == value
    assert bad_characters("漫画 ワンピース") is None


def test_imported_text_is_cleaned_to_one_line() -> None:
    assert single_line("One\tPiece\r\n\x00!") == "One Piece !"
    assert single_line("plain") == "plain"
