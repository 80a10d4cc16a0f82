"""docker-compose.yml / docker-compose.cpu.yml: generated from the spec and the pinned release, no drift,
valid for Debian's docker-compose 1.29, and carrying the stack the README describes (asserted on
``docker-compose config``'s parsed output, not on our own YAML)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tritonize.cli import main as cli_main
from tritonize.deploy import compose, images, yaml_io
from tritonize.deploy.release import load_release
from tritonize.errors import DeployError
from tritonize.server import ADMIN_HEADER, RESTRICTED_APIS
from tritonize.spec import Target, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]
FILES = {Target.GPU: ROOT / "docker-compose.yml", Target.CPU: ROOT / "docker-compose.cpu.yml"}
KEY = "test-admin-key"


def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is missing in CI: scripts/setup.sh installs Debian's docker-compose as root")
        pytest.skip("docker-compose is not installed (Debian package docker-compose; scripts/setup.sh installs it as root)")
    return found


def _config(
    path: Path, *, key: str | None = KEY, profile: str | None = "headless", extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRITON_", "LOCUST_", "TRITONIZE_"))}
    if key is not None:
        env["TRITON_ADMIN_KEY"] = key
    env.update(extra or {})
    command = [_docker_compose(), "-f", str(path)]
    command += ["--profile", profile] if profile else []
    return subprocess.run([*command, "config"], cwd=path.parent, env=env, capture_output=True, text=True, timeout=60)


def _ports(service: dict) -> list[tuple[str, int, int]]:
    """(host ip, published, target) whether ``config`` printed the short (1.29) or the long (v2) syntax."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append((port.get("host_ip", ""), int(port["published"]), int(port["target"])))
        else:
            host, published, target = port.split("/")[0].rsplit(":", 2)
            out.append((host, int(published), int(target)))
    return sorted(out)


def _mounts(service: dict) -> dict[str, str]:
    """container path -> mode ("ro"/"rw") for both ``config`` syntaxes."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            out[volume["target"]] = "ro" if volume.get("read_only") else "rw"
        else:
            parts = volume.split(":")
            out[parts[1]] = parts[2] if len(parts) > 2 else "rw"
    return out


def _parsed(path: Path, extra: dict[str, str] | None = None) -> dict:
    result = _config(path, extra=extra)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.mark.parametrize("target", [Target.GPU, Target.CPU], ids=lambda t: t.value)
def test_compose_checked_in_file_equals_generation_when_spec_and_release_unchanged(target):
    fresh = compose.render(load_spec(), load_release(), target)
    assert FILES[target].read_text(encoding="utf-8") == fresh, (
        f"{FILES[target].name} drifted from its generator: run `tritonize deploy compose --target {target.value}`"
    )


def test_compose_gpu_stack_from_docker_compose_config_when_key_is_set():
    spec, release = load_spec(), load_release()
    services = _parsed(FILES[Target.GPU])["services"]
    assert set(services) == {
        "build", "triton", "locust", "locust-worker", "locust-headless", "tune-triton", "tune", "prometheus", "grafana", "cadvisor"
    }

    triton = services["triton"]
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": spec.server.gpus, "capabilities": ["gpu"]}]
    assert type(devices[0]["count"]) is int
    assert triton["depends_on"] == {"build": {"condition": "service_completed_successfully"}}
    assert triton["healthcheck"]["test"] == ["CMD", "curl", "-f", f"localhost:{spec.server.http_port}/v2/health/ready"]
    assert "start_period" in triton["healthcheck"] and "start_interval" not in triton["healthcheck"]
    assert triton["ulimits"] == {"memlock": -1, "stack": 67108864}
    assert triton["shm_size"] in ("1g", "1073741824", 1073741824)
    expected_ports = sorted((spec.server.http_port, spec.server.grpc_port, spec.server.metrics_port))
    assert _ports(triton) == [("127.0.0.1", p, p) for p in expected_ports]
    assert _mounts(triton) == {compose.MODELS: "ro"}
    assert triton["build"]["args"]["TRITON_IMAGE"] == release.triton_image

    restriction = f"{','.join(RESTRICTED_APIS)}:{ADMIN_HEADER}={KEY}"
    assert f"--http-restricted-api={restriction}" in triton["command"]
    assert f"--grpc-restricted-protocol={restriction}" in triton["command"]
    assert f"--http-max-input-size={spec.server.http_max_input_mib << 20}" in triton["command"]
    assert f"--cuda-memory-pool-byte-size=0:{spec.server.cuda_memory_pool_mib << 20}" in triton["command"]
    assert triton["build"]["args"]["TENSORRT_VERSION"] == release.tensorrt_version

    build = services["build"]
    assert build["build"]["args"]["TENSORRT_IMAGE"] == release.tensorrt_image
    assert build["command"].split()[:7] == ["build", "--spec", "tritonize/models.toml", "--target", "gpu", "--out", "/workspace/model_repository"]
    assert build["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_compose_build_reads_the_mounted_spec_and_writes_as_the_user_when_docker_compose_parses_it():
    """The build service's spec is the project's file (mounted), not the copy baked into the image, and
    it runs as the invoking user (TRITONIZE_UID/GID), never root, with its caches inside the project."""
    build = _parsed(FILES[Target.GPU], {"TRITONIZE_UID": "1234", "TRITONIZE_GID": "5678"})["services"]["build"]
    assert build["user"] == "1234:5678"
    command = build["command"].split()
    spec_path = command[command.index("--spec") + 1]
    assert not spec_path.startswith("/") and (ROOT / spec_path).resolve() == (ROOT / "tritonize" / "models.toml").resolve()
    assert _mounts(build) == {compose.WORKSPACE: "rw"} and build["working_dir"] == compose.WORKSPACE
    cache = build["environment"]["XDG_CACHE_HOME"]
    assert cache.startswith(compose.WORKSPACE + "/") and build["environment"]["HOME"].startswith(cache)
    default = _parsed(FILES[Target.GPU])["services"]["build"]
    assert default["user"].split(":")[0] not in ("0", "root", "")
    other = _parsed(FILES[Target.GPU], {"TRITONIZE_SPEC": "my-spec.toml"})["services"]["build"]
    assert other["command"].split()[:3] == ["build", "--spec", "my-spec.toml"]


def test_compose_locust_services_from_docker_compose_config_when_profile_headless():
    spec = load_spec()
    services = _parsed(FILES[Target.GPU])["services"]
    master, worker, headless = services["locust"], services["locust-worker"], services["locust-headless"]
    assert master["depends_on"] == {"triton": {"condition": "service_healthy"}}
    assert "--master" in master["command"]
    assert _ports(master) == [("127.0.0.1", compose.LOCUST_WEB_PORT, compose.LOCUST_WEB_PORT)]
    assert master["command"][master["command"].index("--host") + 1] == f"http://triton:{spec.server.http_port}"
    assert worker["command"][-3:] == ["--worker", "--master-host", "locust"]
    # Scalable with --scale: no fixed container name, no published port.
    assert "container_name" not in worker and "ports" not in worker
    assert headless["profiles"] == ["headless"] and headless["command"][:2] == ["tritonize", "loadtest"]
    assert headless["depends_on"] == {"triton": {"condition": "service_healthy"}}
    assert _mounts(headless) == {compose.RESULTS: "rw"}
    assert headless["command"][headless["command"].index("--model") + 1] == spec.models[0].name


def test_compose_monitoring_profile_mounts_the_generated_files_when_docker_compose_parses_it():
    from tritonize.deploy import monitoring

    spec = load_spec()
    result = _config(FILES[Target.GPU], profile="monitoring")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    watching = {name: services[name] for name in ("prometheus", "grafana", "cadvisor")}
    assert all(s["profiles"] == ["monitoring"] for s in watching.values())
    assert {s["image"] for s in watching.values()} == {monitoring.PROMETHEUS_IMAGE, monitoring.GRAFANA_IMAGE, monitoring.CADVISOR_IMAGE}
    assert all(":" in s["image"] and not s["image"].endswith(":latest") for s in watching.values())
    mounted = {v.split(":")[0] if isinstance(v, str) else v["source"] for v in watching["prometheus"]["volumes"] + watching["grafana"]["volumes"]}
    for source in mounted:  # docker-compose prints absolute host paths: they must exist in the checkout
        assert Path(source).is_dir(), source
    config = yaml.safe_load((ROOT / monitoring.COMPOSE_DIR / "prometheus" / "prometheus.yml").read_text())
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == [f"triton:{spec.server.metrics_port}"]
    assert _ports(watching["grafana"]) == [("127.0.0.1", monitoring.GRAFANA_PORT, monitoring.GRAFANA_PORT)]
    assert "triton" not in services["triton"].get("profiles", []) and "profiles" not in services["triton"]


def test_compose_cpu_variant_reserves_no_gpu_when_docker_compose_parses_it():
    services = _parsed(FILES[Target.CPU])["services"]
    assert all("deploy" not in service for service in services.values())
    assert services["build"]["command"].split()[3:5] == ["--target", "cpu"]
    assert not any("cuda-memory-pool" in arg for arg in services["triton"]["command"])
    assert services["triton"]["depends_on"] == {"build": {"condition": "service_completed_successfully"}}
    assert set(services) == set(_parsed(FILES[Target.GPU])["services"])


def test_compose_config_fails_naming_the_variable_when_admin_key_missing():
    result = _config(FILES[Target.GPU], key=None)
    assert result.returncode != 0 and "TRITON_ADMIN_KEY" in result.stderr


def test_compose_follows_server_table_when_spec_changes(tmp_path):
    text = (ROOT / "tritonize" / "models.toml").read_text(encoding="utf-8")
    text += "\n[server]\ngpus = 2\nhttp_port = 9000\nshm_size_mib = 1536\n"
    spec = parse_spec(text, source="changed.toml")
    path = yaml_io.write(tmp_path / "docker-compose.yml", compose.render(spec, load_release(), Target.GPU))
    triton = _parsed(path)["services"]["triton"]
    assert triton["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 2
    assert "--http-port=9000" in triton["command"]
    assert triton["healthcheck"]["test"][-1] == "localhost:9000/v2/health/ready"
    assert triton["shm_size"] in ("1536m", "1610612736", 1610612736)


def test_compose_refuses_embedded_target_when_asked():
    with pytest.raises(DeployError, match="embedded"):
        compose.compose_file(load_spec(), load_release(), Target.EMBEDDED)


@pytest.mark.parametrize("dockerfile", ["Dockerfile.engines", "Dockerfile.triton", "Dockerfile.loadtest"])
def test_dockerfile_args_are_exactly_what_the_generator_passes_when_built_by_compose(dockerfile):
    text = (ROOT / "build" / dockerfile).read_text(encoding="utf-8")
    declared = re.findall(r"(?m)^ARG (\w+)\s*$", text)
    assert re.findall(r"(?m)^ARG \w+=", text) == [], "no defaults: the release reaches Dockerfiles only as build args"
    assert re.search(r"(?m)^FROM \$\{(\w+)\}$", text), "the base image is a build arg"
    release = load_release()
    by_file = {Path(i.dockerfile).name: i for i in (images.engines_image(release), images.triton_image(release, Target.GPU), images.loadtest_image(release))}
    assert sorted(declared) == sorted(by_file[dockerfile].args)


def test_repository_names_ngc_images_only_in_versions_env_and_generated_files():
    """A tag typed anywhere else would drift from the pinned release."""
    git = shutil.which("git")
    listed = subprocess.run(
        [git or "git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True
    )
    if git is None or listed.returncode != 0:
        pytest.skip("not a git checkout: cannot list the project's files")
    # README.md: its old copy of the release table moves to docs/release.md when the README is rewritten.
    generated = {"docker-compose.yml", "docker-compose.cpu.yml", "tritonize/deploy/versions.env", "docs/release.md", "README.md"}
    pattern = re.compile(r"(tritonserver|tensorrt):\d{2}\.\d{2}")
    stray = []
    for name in listed.stdout.splitlines():
        path = ROOT / name
        if name in generated or name.startswith("deploy/kubernetes/") or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        stray += [f"{name}: {m.group(0)}" for m in pattern.finditer(text)]
    assert stray == [], "NGC image tags outside tritonize/deploy/versions.env (use tritonize.deploy.release)"
    from tritonize.deploy.release import markdown_table, marked_table

    page = (ROOT / "docs" / "release.md").read_text(encoding="utf-8")
    block = marked_table(page)
    assert block == markdown_table(load_release()), "docs/release.md release table drifted: scripts/generate-deploy.sh"
    assert pattern.findall(page.replace(block, "")) == []


def test_engines_image_keeps_ngc_entrypoint_in_front_of_tritonize():
    """NGC's entrypoint sets up CUDA forward compatibility; an ENTRYPOINT of its own would skip it."""
    text = (ROOT / "build" / "Dockerfile.engines").read_text(encoding="utf-8")
    entrypoints = re.findall(r"(?m)^ENTRYPOINT (.+)$", text)
    assert entrypoints == ['["/opt/nvidia/nvidia_entrypoint.sh", "tritonize"]']


def test_both_images_check_the_pinned_tensorrt_when_built():
    """The rule between the images is the same TensorRT version: the engines image checks its Python
    package and libnvinfer, the serving image its libnvinfer, with the file the generator names."""
    engines = (ROOT / "build" / "Dockerfile.engines").read_text(encoding="utf-8")
    triton = (ROOT / "build" / "Dockerfile.triton").read_text(encoding="utf-8")
    assert "tritonize deploy release --check-tensorrt" in engines
    assert f"COPY {images.TENSORRT_CHECK} " in triton and (ROOT / images.TENSORRT_CHECK).is_file()
    assert re.search(r'python3 /tmp/tensorrt_facts.py "\$TENSORRT_VERSION"', triton)
    assert images.triton_image(load_release(), Target.GPU).args["TENSORRT_VERSION"] == load_release().tensorrt_version


def test_cli_deploy_compose_prints_the_generation_when_out_is_dash(capsys):
    assert cli_main(["deploy", "compose", "--target", "cpu", "--out", "-"]) == 0
    assert capsys.readouterr().out == FILES[Target.CPU].read_text(encoding="utf-8")
