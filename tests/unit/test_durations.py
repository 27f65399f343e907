import pytest

from slipway.durations import format_duration, parse_duration
from slipway.errors import ConfigError


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("1.5s", 1.5),
        ("250ms", 0.25),
        ("2h", 7200),
        ("0", 0),
        ("1m0.5s", 60.5),
    ],
)
def test_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "30", "5 m", "1d", "m", "-5s", "1h30", "abc", 30, None, True])
def test_parse_rejects_with_the_key(bad: object) -> None:
    with pytest.raises(ConfigError, match="poll_interval"):
        parse_duration(bad, key="poll_interval")


@pytest.mark.parametrize("seconds,text", [(45.23, "45.2s"), (0, "0.0s"), (125.3, "2m5.3s"), (3723, "1h2m3.0s")])
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
