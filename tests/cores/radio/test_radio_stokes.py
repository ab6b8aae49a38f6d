"""Stokes I from CORR_TYPE: small MSs written here (python-casacore) with the correlations in any order."""

from __future__ import annotations

import numpy as np
import pytest

from portaflow.cores.radio.msio import read_ms
from portaflow.errors import InputError

NROW, NCHAN = 6, 3
XX, XY, YX, YY, RR, LL = 9, 10, 11, 12, 5, 8


def write_small_ms(path: str, corr_types: list[int], data: np.ndarray, weight: np.ndarray | None = None,
                   flag: np.ndarray | None = None, antenna2: np.ndarray | None = None) -> None:
    """A minimal valid MS: NROW cross-correlation rows, one SPW of NCHAN channels, the given correlations."""
    from casacore.tables import default_ms, makearrcoldesc, maketabdesc, table

    ncorr = len(corr_types)
    desc = maketabdesc([makearrcoldesc("DATA", 0j, ndim=2, shape=[NCHAN, ncorr], valuetype="complex", options=4)])
    with default_ms(path, desc) as ms:
        ms.addrows(NROW)
        ms.putcol("UVW", np.arange(NROW * 3, dtype=float).reshape(NROW, 3) * 10.0)
        ms.putcol("DATA", data.astype(np.complex64))
        ms.putcol("FLAG", np.zeros(data.shape, bool) if flag is None else flag)
        ms.putcol("WEIGHT", np.ones((NROW, ncorr), np.float32) if weight is None else weight.astype(np.float32))
        ms.putcol("SIGMA", np.ones((NROW, ncorr), np.float32))
        ms.putcol("ANTENNA1", np.zeros(NROW, np.int32))
        ms.putcol("ANTENNA2", np.arange(1, NROW + 1, dtype=np.int32) if antenna2 is None else antenna2)
        ms.putcol("TIME", np.full(NROW, 5.0e9))
    with table(f"{path}::SPECTRAL_WINDOW", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcell("CHAN_FREQ", 0, np.linspace(1e9, 1.2e9, NCHAN))
        t.putcell("NUM_CHAN", 0, NCHAN)
    with table(f"{path}::POLARIZATION", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcell("NUM_CORR", 0, ncorr)
        t.putcell("CORR_TYPE", 0, np.array(corr_types, np.int32))
        t.putcell("CORR_PRODUCT", 0, np.zeros((ncorr, 2), np.int32))
    with table(f"{path}::DATA_DESCRIPTION", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcell("SPECTRAL_WINDOW_ID", 0, 0)
        t.putcell("POLARIZATION_ID", 0, 0)
    with table(f"{path}::FIELD", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcell("PHASE_DIR", 0, np.array([[1.0, -0.5]]))
    with table(f"{path}::ANTENNA", readonly=False, ack=False) as t:
        t.addrows(NROW + 1)


def _data(rng, ncorr):
    return (rng.normal(size=(NROW, NCHAN, ncorr)) + 1j * rng.normal(size=(NROW, NCHAN, ncorr))).astype(np.complex64)


@pytest.mark.parametrize("order", [[XX, XY, YX, YY], [YY, XY, YX, XX], [XX, YY, XY, YX], [YX, YY, XX]])
def test_linear_stokes_i_whatever_the_order(tmp_path, order):
    data = _data(np.random.default_rng(len(order)), len(order))
    path = str(tmp_path / "lin.ms")
    write_small_ms(path, order, data)
    obs = read_ms(path)
    expected = 0.5 * (data[..., order.index(XX)] + data[..., order.index(YY)])
    assert np.allclose(obs.vis, expected, rtol=0, atol=1e-6)
    assert np.allclose(obs.weight, 2.0)  # two hands of weight 1: the mean has half the variance


def test_circular_stokes_i_flags_and_weights(tmp_path):
    order = [LL, RR]
    data = _data(np.random.default_rng(1), 2)
    weight = np.column_stack([np.full(NROW, 1.0), np.full(NROW, 3.0)])
    flag = np.zeros((NROW, NCHAN, 2), bool)
    flag[2, 1, 0] = True  # one hand flagged: the Stokes I sample is flagged
    path = str(tmp_path / "circ.ms")
    write_small_ms(path, order, data, weight=weight, flag=flag)
    obs = read_ms(path, use_daskms=False)
    assert np.allclose(obs.vis, 0.5 * (data[..., 0] + data[..., 1]), atol=1e-6)
    assert np.allclose(obs.weight, 4 * 1.0 * 3.0 / 4.0)  # 1 / var((RR+LL)/2) with var 1 and 1/3
    assert obs.flag.sum() == 1 and obs.flag[2, 1]


def test_stokes_i_correlation_is_taken_as_it_is(tmp_path):
    data = _data(np.random.default_rng(2), 1)
    path = str(tmp_path / "i.ms")
    write_small_ms(path, [1], data)
    assert np.array_equal(read_ms(path).vis, data[..., 0])


@pytest.mark.parametrize("order,names", [([XY], "XY"), ([XX, XY, YX], "XX XY YX"), ([RR, XX], "RR XX")])
def test_refuses_when_stokes_i_cannot_be_formed(tmp_path, order, names):
    path = str(tmp_path / "cross.ms")
    write_small_ms(path, order, _data(np.random.default_rng(3), len(order)))
    with pytest.raises(InputError) as err:
        read_ms(path)
    assert path in str(err.value) and f"holds {names}" in str(err.value) and "Stokes I" in str(err.value)


def test_autocorrelations_are_dropped_and_counted(tmp_path, caplog):
    data = _data(np.random.default_rng(4), 2)
    path = str(tmp_path / "autos.ms")
    write_small_ms(path, [XX, YY], data, antenna2=np.array([0, 1, 2, 0, 4, 0], np.int32))  # rows 0, 3, 5: 0-0
    with caplog.at_level("INFO", logger="portaflow.cores.radio.msio"):
        obs = read_ms(path)
    assert obs.nrow == 3 and list(obs.antenna2) == [1, 2, 4]
    assert np.allclose(obs.vis, 0.5 * (data[[1, 2, 4], :, 0] + data[[1, 2, 4], :, 1]), atol=1e-6)
    assert f"{path}: 3 autocorrelation rows of 6 dropped" in caplog.text


def test_only_autocorrelations_is_refused(tmp_path):
    path = str(tmp_path / "allautos.ms")
    write_small_ms(path, [XX, YY], _data(np.random.default_rng(5), 2), antenna2=np.zeros(NROW, np.int32))
    with pytest.raises(InputError, match="all 6 rows are autocorrelations"):
        read_ms(path)
