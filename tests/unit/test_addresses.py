"""The one rule for the address workers reach a listener at (Parsl's interchange on the driver, a Dask step's
scheduler in its job): `portaflow.addresses.choose_address`. The cases here need no network beyond loopback;
tests/slurm/test_multinode.py runs the rule across the namespaced compute nodes of the test cluster."""

from __future__ import annotations

import pytest

from portaflow.addresses import AddressError, choose_address, is_loopback, local_addresses, route_source
from portaflow.engines.parsl_engine import ParslEngine
from portaflow.plan import make_plan
from portaflow.runtime.dask_jobs import scheduler_address, worker_specs
from portaflow.schedulers import adapter_for
from portaflow.schedulers.context import RunContext
from portaflow.spec.loading import load_site, load_workflow

from testlib import ROOT


def test_a_peer_on_this_host_gives_loopback_and_says_so():
    choice = choose_address(peers=["127.0.0.1"], what="Parsl workers")
    assert (choice.address, choice.chosen_by) == ("127.0.0.1", "route toward 127.0.0.1, a host where Parsl workers run")


def test_the_route_toward_a_peer_gives_the_local_end_of_that_route():
    # Any address of this host is a peer whose route starts at that address (the local routing table).
    here = next(ip for ips in local_addresses().values() for ip in ips if not is_loopback(ip)) if any(
        not is_loopback(ip) for ips in local_addresses().values() for ip in ips) else None
    if here is None:
        pytest.skip("this host has no address but loopback")
    assert route_source(here) == here
    assert choose_address(peers=[here]).address == here


def test_unresolvable_peers_fall_through_to_parsl_guesses_never_to_loopback():
    try:
        choice = choose_address(peers=["no-such-host.invalid"])
    except AddressError as exc:  # a host with nothing but loopback: said, with what was tried
        assert "route toward no-such-host.invalid" in str(exc) and "network.address or network.interface" in str(exc)
    else:
        assert not is_loopback(choice.address), choice
        assert "address_by_route" in choice.chosen_by or "address_by_hostname" in choice.chosen_by


def test_profile_address_wins_but_must_be_this_hosts():
    assert choose_address(address="127.0.0.1", peers=["127.0.0.1"]).chosen_by == "network.address in the site profile"
    with pytest.raises(AddressError, match=r"network.address: 192.0.2.254 is not an address of .* \(addresses here: .*lo 127.0.0.1"):
        choose_address(address="192.0.2.254")


def test_profile_interface_must_exist_and_not_be_loopback_for_remote_workers():
    assert choose_address(interface="lo").address == "127.0.0.1"  # no peers known elsewhere: allowed
    with pytest.raises(AddressError, match=r"network.interface: 'nosuch0' does not exist on .*interfaces here: .*lo 127.0.0.1"):
        choose_address(interface="nosuch0")
    with pytest.raises(AddressError, match=r"network.interface: 127.0.0.1 is loopback, which Dask workers on 10.0.0.5 cannot reach"):
        choose_address(interface="lo", peers=["10.0.0.5"], what="Dask workers")
    with pytest.raises(AddressError, match=r"network.address: 127.0.0.1 is loopback"):
        choose_address(address="127.0.0.1", peers=["10.0.0.5"])


def test_address_errors_are_bad_input():
    assert AddressError("x").exit_code == 2


def test_dask_scheduler_in_a_job_routes_toward_the_submit_host(monkeypatch):
    settings = {"interface": None, "peers": ["$SLURM_SUBMIT_HOST"]}
    monkeypatch.setenv("SLURM_SUBMIT_HOST", "127.0.0.1")
    assert scheduler_address(settings).chosen_by == "route toward 127.0.0.1, a host where Dask workers run"
    # Workers then listen on loopback too; on another address they choose their own (toward the scheduler).
    specs = worker_specs({"cpu_workers": 1, "gpu_workers": 0, "threads": 1, "cpu_worker": {"memory_mib": 512},
                          "cpu_worker_directives": []}, "127.0.0.1")
    assert specs["cpu-0"]["options"]["worker_extra_args"] == ["--host", "127.0.0.1"]
    specs = worker_specs({"cpu_workers": 1, "gpu_workers": 0, "threads": 1, "cpu_worker": {"memory_mib": 512},
                          "cpu_worker_directives": []}, "10.77.0.11")
    assert specs["cpu-0"]["options"]["worker_extra_args"] == []


def _context(site: str, tmp_path):
    loaded = load_site(site, environ={})
    the_plan = make_plan(load_workflow(ROOT / "workflows" / "examples" / "wordfreq.yaml").workflow, loaded.site)
    return RunContext(the_plan, loaded, tmp_path, tmp_path / "run", the_plan.tasks, adapter_for(loaded))


def test_slurm_without_network_section_no_longer_renders_loopback(tmp_path):
    """The bug: every batch profile without `network:` gave Parsl's interchange 127.0.0.1."""
    ctx = _context(str(ROOT / "tests" / "data" / "sites" / "slurm-multinode.yaml"), tmp_path)
    assert ParslEngine()._address(ctx, resolve=False) == "<the driver's address toward the compute nodes, chosen when the run starts>"
    local = _context("local", tmp_path)
    assert ParslEngine()._address(local, resolve=False) == "127.0.0.1"
    assert ParslEngine()._address(local, resolve=True) == "127.0.0.1"
    assert local.driver_address == {"address": "127.0.0.1", "chosen_by": "route toward 127.0.0.1, a host where Parsl workers run"}
