"""The checked-in Apptainer and Containerfile recipes are exactly what their YAML generates."""

from __future__ import annotations

from portaflow.containers.recipes import render_all

from testlib import ROOT


def test_recipes_are_generated_from_yaml():
    generated = render_all(ROOT / "containers")
    assert {p.name for p in generated} >= {"hep.def", "hep.Containerfile", "radio.def", "radio.Containerfile"}
    for path, text in generated.items():
        assert path.read_text() == text, f"{path.name} is stale: run `portaflow containers render`"


def test_both_runtimes_install_the_same_things():
    for name in ("hep", "radio"):
        definition = (ROOT / "containers" / f"{name}.def").read_text()
        containerfile = (ROOT / "containers" / f"{name}.Containerfile").read_text()
        install = [text.strip() for text in definition.splitlines() if "pip install" in text]
        assert install and all(line in containerfile for line in install)


def test_a_local_base_needs_no_registry():
    from portaflow.containers.recipes import apptainer_def, load_recipe

    recipe = load_recipe(ROOT / "containers" / "hep.yaml")
    local = apptainer_def(recipe, "hep.yaml", base="/images/debian-python.sif")
    assert "Bootstrap: localimage\nFrom: /images/debian-python.sif\n" in local
    assert "Bootstrap: docker\nFrom: library/python:3.11-slim-bookworm\n" in apptainer_def(recipe, "hep.yaml")
    # the install steps do not change with the base
    assert local.split("%files", 1)[1] == apptainer_def(recipe, "hep.yaml").split("%files", 1)[1]


def test_build_commands_for_each_runtime(tmp_path):
    from portaflow.containers.build import build_command, default_image, wheelhouse_command
    from portaflow.containers.recipes import load_recipe

    podman = build_command("podman", "podman", tmp_path, "localhost/portaflow-hep:latest", "localhost/base:1")
    assert podman == ["podman", "build", "--file", "Containerfile", "--tag", "localhost/portaflow-hep:latest",
                      "--build-arg", "BASE=localhost/base:1", "--network", "none", "--layers=false", "."]
    assert build_command("docker", "/usr/bin/docker", tmp_path, "x:1", None)[:2] == ["/usr/bin/docker", "build"]
    apptainer = build_command("apptainer", "apptainer", tmp_path, "out/hep.sif", None)
    assert apptainer[:3] == ["apptainer", "build", "--force"] and apptainer[3].endswith("/out/hep.sif") and apptainer[4] == "image.def"
    assert default_image("hep", "apptainer") == "hep.sif" and default_image("hep", "podman") == "localhost/portaflow-hep:latest"
    wheels = wheelhouse_command(load_recipe(ROOT / "containers" / "radio.yaml"), ROOT, tmp_path / "wh")
    assert wheels[-1] == f"{ROOT}[radio,objectstore]" and "--wheel-dir" in wheels


def test_unknown_recipe_and_missing_runtime_are_input_errors(tmp_path):
    import pytest

    from portaflow.containers.build import build_image
    from portaflow.errors import InputError

    with pytest.raises(InputError, match=r"no container recipe 'hepp' .* recipes there: hep, radio"):
        build_image("hepp", "podman", ROOT / "containers", ROOT, executable="true")
    with pytest.raises(InputError, match="/nonexistent/podman is not on PATH"):
        build_image("hep", "podman", ROOT / "containers", ROOT, executable="/nonexistent/podman")


def test_the_build_key_follows_the_wheels_contents_not_their_timestamps(tmp_path):
    """An image is kept only when its label holds the key of the same inputs: a changed file of portaflow's wheel
    (its RECORD hash), another dependency version, recipe or base make another key; a rebuilt wheel of the same
    files (new zip timestamps) does not."""
    import time
    import zipfile

    from portaflow.containers.build import build_command, build_key

    def wheelhouse(name: str, record: str, files: dict[str, str]) -> tuple:
        folder = tmp_path / name
        folder.mkdir()
        for wheel, contents in files.items():
            with zipfile.ZipFile(folder / wheel, "w") as archive:
                archive.writestr(zipfile.ZipInfo("pkg/__init__.py", time.localtime(time.time() - 3600 * len(name))[:6]), contents)
                archive.writestr(f"{wheel.split('-')[0]}-1.0.dist-info/RECORD", record + contents)
        return folder

    one = build_key("FROM x", "base sha256:1", wheelhouse("a", "pkg/__init__.py,sha256=", {"portaflow-1.0-py3-none-any.whl": "v1"}))
    same = build_key("FROM x", "base sha256:1", wheelhouse("bb", "pkg/__init__.py,sha256=", {"portaflow-1.0-py3-none-any.whl": "v1"}))
    assert one == same
    changed = build_key("FROM x", "base sha256:1", wheelhouse("ccc", "pkg/__init__.py,sha256=", {"portaflow-1.0-py3-none-any.whl": "v2"}))
    more = build_key("FROM x", "base sha256:1", wheelhouse("dddd", "pkg/__init__.py,sha256=",
                                                           {"portaflow-1.0-py3-none-any.whl": "v1", "numpy-2.0-cp311.whl": "n"}))
    assert len({one, changed, more, build_key("FROM y", "base sha256:1", tmp_path / "a"), build_key("FROM x", "base sha256:2", tmp_path / "a")}) == 5
    assert build_command("podman", "podman", tmp_path, "img:1", None, key=one)[6:8] == ["--label", f"io.portaflow.build-key={one}"]


def test_the_build_key_ignores_the_wheels_metadata(tmp_path):
    """portaflow's METADATA carries the README: an edited README must not rebuild the images; a code change must."""
    import zipfile

    from portaflow.containers.build import build_key

    def key(folder: str, metadata_hash: str, code_hash: str) -> str:
        (tmp_path / folder).mkdir()
        with zipfile.ZipFile(tmp_path / folder / "portaflow-1.0-py3-none-any.whl", "w") as archive:
            archive.writestr("portaflow-1.0.dist-info/RECORD", f"portaflow/a.py,sha256={code_hash},1\n"
                                                               f"portaflow-1.0.dist-info/METADATA,sha256={metadata_hash},9\n")
        return build_key("FROM x", "base", tmp_path / folder)

    assert key("a", "m1", "c1") == key("b", "m2", "c1") != key("c", "m1", "c2")
