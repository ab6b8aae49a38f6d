import pytest

from portaflow.units import format_walltime, parse_memory_mib, parse_walltime_seconds


@pytest.mark.parametrize("text, seconds", [
    ("90m", 5400), ("1h30m", 5400), ("45s", 45), ("2d", 172800), ("2-00:00:00", 172800),
    ("01:30:00", 5400), ("1-12:00", 129600), ("1:30", 5400), (30, 1800), ("1.5h", 5400), ("1h 30m", 5400),
])
def test_walltimes(text, seconds):
    assert parse_walltime_seconds(text) == seconds


@pytest.mark.parametrize("bad", ["90 minutes", "abc", "", "1x", "-5m", 0, True, "00:00:00", 1.5])
def test_bad_walltimes(bad):
    with pytest.raises(ValueError, match="expected"):
        parse_walltime_seconds(bad)


@pytest.mark.parametrize("text, mib", [
    ("4GB", 3815), ("4GiB", 4096), ("4G", 4096), ("4000MiB", 4000), ("512M", 512), (2048, 2048),
    ("1.5G", 1536), ("1TB", 953675), ("1024KiB", 1), ("256MB", 245), ("1000", 1000),
])
def test_memory(text, mib):
    assert parse_memory_mib(text) == mib


@pytest.mark.parametrize("bad", ["4 gigs", "GB", "-1G", True, 1.5, "4XB"])
def test_bad_memory(bad):
    with pytest.raises(ValueError, match="expected"):
        parse_memory_mib(bad)


def test_format_walltime():
    assert format_walltime(5400) == "01:30:00"
    assert format_walltime(172800 + 61) == "2-00:01:01"
