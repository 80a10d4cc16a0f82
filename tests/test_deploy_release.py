"""tritonize/deploy/versions.env: one typed, checked record of the pinned NGC release."""

from __future__ import annotations

import pytest

from tritonize.cli import main as cli_main
from tritonize.deploy.release import RELEASE_FILE, image_for, load_release, parse_release
from tritonize.errors import ReleaseError


def _shipped_text() -> str:
    from importlib import resources

    return resources.files("tritonize.deploy").joinpath(RELEASE_FILE).read_text(encoding="utf-8")


def test_load_release_pairs_both_images_with_the_ngc_tag_when_shipped_file_loads():
    release = load_release()
    assert release.triton_image == image_for("tritonserver", release.ngc_release)
    assert release.tensorrt_image == image_for("tensorrt", release.ngc_release)
    # A network-facing server runs a release with the 2025 HTTP / Python-backend CVEs fixed (25.07 and later).
    assert tuple(int(p) for p in release.ngc_release.split(".")) >= (25, 7)


def test_parse_release_error_names_the_key_when_an_image_tag_differs():
    text = _shipped_text()
    release = load_release()
    broken = text.replace(release.tensorrt_image, image_for("tensorrt", "24.10"))
    with pytest.raises(ReleaseError, match="TENSORRT_IMAGE.*same tag"):
        parse_release(broken, "v.env")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t + "EXTRA_KEY=1\n", "unknown key"),
        (lambda t: "\n".join(line for line in t.splitlines() if not line.startswith("CUDA_VERSION=")), "missing.*CUDA_VERSION"),
        (lambda t: t.replace("PYTHON_BACKEND_NUMPY2=false", "PYTHON_BACKEND_NUMPY2=maybe"), "true or false"),
        (lambda t: t.replace("MIN_DRIVER=575", "MIN_DRIVER=575 # branch"), "KEY=VALUE"),
        (lambda t: t + "NGC_RELEASE=24.10\n", "once"),
    ],
)
def test_parse_release_raises_clear_error_when_file_is_malformed(change, message):
    with pytest.raises(ReleaseError, match=message):
        parse_release(change(_shipped_text()), "v.env")


def test_release_check_tensorrt_accepts_build_suffix_and_rejects_other_release_when_compared():
    release = load_release()
    release.check_tensorrt(release.tensorrt_version)
    major, minor, patch = release.tensorrt_version.split(".")[:3]
    release.check_tensorrt(f"{major}.{minor}.{patch}.post1")
    with pytest.raises(ReleaseError, match="TENSORRT_VERSION.*10.5.0"):
        release.check_tensorrt("10.5.0.18")
    with pytest.raises(ReleaseError, match="CONTAINER_PYTHON"):
        release.check_python("3.10.12")


def test_release_numpy_requirement_follows_python_backend_flag_when_numpy2_changes():
    text = _shipped_text()
    old = parse_release(text.replace("PYTHON_BACKEND_NUMPY2=true", "PYTHON_BACKEND_NUMPY2=false"), "a")
    new = parse_release(text.replace("PYTHON_BACKEND_NUMPY2=false", "PYTHON_BACKEND_NUMPY2=true"), "b")
    assert old.python_model_requirements()[0] == "numpy<2"
    assert new.python_model_requirements()[0] == "numpy"
    assert any(r.startswith("tokenizers") for r in old.python_model_requirements())
    assert not any(r.startswith("torch") for r in old.python_model_requirements())
    assert old.python_model_requirements(gpu=True)[-1] == old.python_backend_torch.strip() != ""


def test_cli_deploy_release_prints_every_pinned_fact_when_run(capsys):
    assert cli_main(["deploy", "release"]) == 0
    printed = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert printed == load_release().facts()


def test_cli_deploy_release_check_tensorrt_exits_1_when_tensorrt_absent(capsys):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - inside the engine-build image the check compares real versions
        pytest.skip("TensorRT is installed here: the check compares versions instead")
    assert cli_main(["deploy", "release", "--check-tensorrt"]) == 1
    assert "TensorRT is not installed" in capsys.readouterr().err
