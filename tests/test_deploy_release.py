"""tritonize/deploy/versions.env: one typed, checked record of the pinned NGC release, each value cited."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tritonize import tensorrt_facts
from tritonize.cli import main as cli_main
from tritonize.deploy.release import RELEASE_FILE, image_for, load_release, markdown_table, marked_table, parse_release
from tritonize.errors import ReleaseError
from tritonize.tensorrt_facts import version_parts
from tritonize.triton_facts import CRASHERS, first_release_without_crashers

ROOT = Path(__file__).resolve().parents[1]
# Where a pinned value may come from: NVIDIA's documentation and NVIDIA's own repositories.
NVIDIA_SOURCES = ("https://docs.nvidia.com/", "https://github.com/triton-inference-server/", "https://github.com/NVIDIA/")


def _shipped_text() -> str:
    from importlib import resources

    return resources.files("tritonize.deploy").joinpath(RELEASE_FILE).read_text(encoding="utf-8")


def test_shipped_release_carries_every_crasher_fix_when_loaded():
    """A network-facing GPU server must survive every single request that stops the embedded 2.51."""
    release = load_release()
    assert release.triton_image == image_for("tritonserver", release.ngc_release)
    newest_fix = first_release_without_crashers()
    assert version_parts(release.triton_version) >= version_parts(newest_fix.fixed_in), newest_fix
    assert all(version_parts(release.triton_version) >= version_parts(c.fixed_in) for c in CRASHERS.values())
    assert version_parts(release.ngc_release) >= version_parts(newest_fix.ngc)


def test_every_pinned_value_cites_an_nvidia_page_when_shipped_file_loads():
    release = load_release()
    for key in release.facts():
        sources = release.sources[key]
        assert sources, key
        assert any(s.startswith(NVIDIA_SOURCES) for s in sources), f"{key}: {sources}"


def test_parse_release_names_the_key_whose_source_line_is_missing():
    text = _shipped_text()
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("CUDA_VERSION="))
    while lines[index - 1].startswith("# source:"):
        del lines[index - 1]
        index -= 1
    with pytest.raises(ReleaseError, match="CUDA_VERSION.*source"):
        parse_release("\n".join(lines), "v.env")


def test_release_rule_is_the_same_tensorrt_version_not_the_same_tag():
    """The TensorRT image may carry another tag; it must be an NGC tensorrt image (its TensorRT is checked at build)."""
    text = _shipped_text()
    release = load_release()
    other_tag = parse_release(text.replace(release.tensorrt_image, image_for("tensorrt", "26.06")), "v.env")
    assert other_tag.tensorrt_image.endswith(":26.06-py3") and other_tag.tensorrt_version == release.tensorrt_version
    with pytest.raises(ReleaseError, match="TENSORRT_IMAGE"):
        parse_release(text.replace(release.tensorrt_image, image_for("pytorch", release.ngc_release)), "v.env")
    with pytest.raises(ReleaseError, match="TRITON_IMAGE"):
        parse_release(text.replace(release.triton_image, image_for("tritonserver", "25.07")), "v.env")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t + "EXTRA_KEY=1\n", "unknown key"),
        (lambda t: "\n".join(line for line in t.splitlines() if not line.startswith("CUDA_VERSION=")), "missing.*CUDA_VERSION"),
        (lambda t: t.replace("PYTHON_BACKEND_NUMPY2=false", "PYTHON_BACKEND_NUMPY2=maybe"), "true or false"),
        (lambda t: re.sub(r"(?m)^(MIN_DRIVER=\d+)$", r"\1 # branch", t), "KEY=VALUE"),
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


def test_tensorrt_release_compares_major_minor_patch_and_names_the_library_by_major():
    assert tensorrt_facts.same_release("11.1.0", "11.1.0.106") and not tensorrt_facts.same_release("11.0.0", "11.1.0.106")
    assert tensorrt_facts.library_name(11) == "libnvinfer.so.11"


def test_tensorrt_check_script_runs_standalone_as_the_triton_image_build_runs_it():
    """build/Dockerfile.triton copies tritonize/tensorrt_facts.py into an image without tritonize and runs it
    with the pinned version: it must need nothing but the standard library, and fail in one line without libnvinfer."""
    if shutil.which("ldconfig") and "libnvinfer.so" in subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout:
        pytest.skip("libnvinfer is installed here: the script would compare real versions")
    release = load_release()
    script = ROOT / "tritonize" / "tensorrt_facts.py"
    # -I: isolated mode, no site-packages or project on the path, as in the tritonserver image
    result = subprocess.run([sys.executable, "-I", str(script), release.tensorrt_version], capture_output=True, text=True)
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1 and f"no libnvinfer for the pinned TensorRT {release.tensorrt_version}" in result.stderr
    assert subprocess.run([sys.executable, "-I", str(script)], capture_output=True, text=True).returncode == 2


def test_docs_release_table_equals_generation_when_versions_env_unchanged():
    page = (ROOT / "docs" / "release.md").read_text(encoding="utf-8")
    assert marked_table(page) == markdown_table(load_release()), "run scripts/generate-deploy.sh"
    for source in (s for sources in load_release().sources.values() for s in sources if s.startswith("http")):
        assert f"<{source.split()[0]}>" in page  # every source is cited on the page
