"""Asking a container runtime about an image: present, absent, its digest, and a runtime that cannot answer.

The runtime here is a small script that answers as podman does (exit 0/1 for `image exists`, 125 when
podman itself is broken), so the decisions are tested without podman installed.
"""

from __future__ import annotations

import hashlib
import logging
import stat

import pytest

from portaflow.commands import CommandError
from portaflow.containers import ContainerCall
from portaflow.containers.images import image_digest, image_present
from portaflow.preflight import container_problems
from portaflow.spec.site import SiteProfile

FAKE = """#!/bin/sh
# image exists NAME | image inspect --format {{.Id}} NAME
name="$(eval echo \\${$#})"
case "$name" in
  localhost/here:*) [ "$2" = exists ] && exit 0; echo 0123abcd; exit 0 ;;
  localhost/broken:*) echo "Error: database is locked" >&2; exit 125 ;;
  *) echo "Error: $name: image not known" >&2; exit 1 ;;
esac
"""


@pytest.fixture
def fake_podman(tmp_path):
    path = tmp_path / "podman"
    path.write_text(FAKE)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_present_and_absent(fake_podman):
    assert image_present(ContainerCall("podman", fake_podman, "localhost/here:latest"))
    assert not image_present(ContainerCall("podman", fake_podman, "localhost/gone:latest"))


def test_a_broken_runtime_is_an_error_not_a_missing_image(fake_podman):
    with pytest.raises(CommandError) as info:
        image_present(ContainerCall("podman", fake_podman, "localhost/broken:latest"))
    assert info.value.exit_code_of_command == 125 and "database is locked" in str(info.value)


def test_digest_is_logged(fake_podman, caplog):
    caplog.set_level(logging.INFO, logger="portaflow")
    assert image_digest(ContainerCall("podman", fake_podman, "localhost/here:latest")) == "sha256:0123abcd"
    assert "image localhost/here:latest: digest sha256:0123abcd" in caplog.messages


def test_unknown_digest_is_a_warning_that_says_why(fake_podman, caplog):
    caplog.set_level(logging.WARNING, logger="portaflow")
    assert image_digest(ContainerCall("podman", fake_podman, "localhost/gone:latest")) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "digest unknown" in warnings[0] and "image not known" in warnings[0]
    assert image_digest(ContainerCall("podman", "/nonexistent/podman", "localhost/here:latest")) is None
    assert "/nonexistent/podman not found on PATH" in caplog.records[-1].getMessage()


def test_sif_digest_is_the_files_sha256(tmp_path):
    sif = tmp_path / "hep.sif"
    sif.write_bytes(b"not really a SIF")
    assert image_digest(ContainerCall("apptainer", "apptainer", str(sif))) == \
        "sha256:" + hashlib.sha256(b"not really a SIF").hexdigest()


def test_preflight_lists_a_broken_runtime_as_a_problem(fake_podman):
    from portaflow.plan import make_plan
    from portaflow.spec.loading import load_workflow

    from testlib import WORKFLOWS

    site = SiteProfile.model_validate({
        "name": "s", "scheduler": "local",
        "partitions": {"local": {"max_walltime": "1h", "cores_per_node": 4, "memory_per_node": "8GB"}},
        "container": {"runtime": "podman", "executable": fake_podman, "images": {"hep": "localhost/broken:1"}},
    })
    plan = make_plan(load_workflow(WORKFLOWS / "hep" / "zmumu.yaml").workflow, site, {})
    problems = container_problems(plan, site)
    assert len(problems) == 1
    assert "could not check image localhost/broken:1 for container 'hep'" in problems[0]
    assert "exit code 125" in problems[0] and "database is locked" in problems[0]
