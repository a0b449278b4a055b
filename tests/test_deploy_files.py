"""docker-compose.yml, deploy/Dockerfile and deploy/k8s/, checked for structure and references.

No Docker engine or Kubernetes cluster here: the files are parsed (PyYAML) and every
reference is followed to something that exists: build contexts and Dockerfiles, files the
image copies, services named in depends_on and in the submitter's URLs, volumes, the job
and its arguments (parsed by the CLI's own parsers), the fake LLM's config, the connector
jar's checksum, the entry script and PythonDriver arguments of the FlinkDeployment.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from streaming_agents.cli.jobs_cmd import entry_parser
from streaming_agents.cli.main import build_parser
from streaming_agents.registry import load_job

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
K8S = ROOT / "deploy" / "k8s"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def dockerfile_lines() -> list[str]:
    """Instructions of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def pyflink_version() -> str:
    from pyflink.version import __version__

    return str(__version__)


def flink_properties(service: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = yaml.safe_load(service["environment"]["FLINK_PROPERTIES"])
    return props


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_base_python_and_pyflink_match_this_project() -> None:
    lines = dockerfile_lines()
    arg = next(ln for ln in lines if ln.startswith("ARG FLINK_IMAGE="))
    image = arg.split("=", 1)[1]
    assert re.fullmatch(r"flink:2\.\d+\.\d+-java17", image), image
    assert image.removeprefix("flink:").split("-")[0] == pyflink_version()
    assert "FROM ${FLINK_IMAGE}" in lines
    run = " ".join(ln for ln in lines if ln.startswith("RUN"))
    assert "python3.11 -m venv /opt/venv" in run and "libpython3.11" in run
    minor = ".".join(pyflink_version().split(".")[:2])
    assert f'"apache-flink=={minor}.*"' in run
    assert "pip install --no-cache-dir /opt/streaming-agents" in run
    assert "flink-python-" in run and "/opt/flink/lib/" in run
    assert lines[-1] == "USER flink"


def test_dockerfile_copies_what_exists_and_the_dockerignore_lets_through() -> None:
    ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = [p[1:].rstrip("*").rstrip("/") for p in ignore if p.startswith("!")]
    copies = [ln.split()[1:-1] for ln in dockerfile_lines() if ln.startswith("COPY ")]
    sources = [s for srcs in copies for s in srcs if not s.startswith("--")]
    assert {"pyproject.toml", "streaming_agents", "jobs", "deploy/run_job.py"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert any(
            source == a or source.startswith(a + "/") or fnmatch.fnmatch(source, a) for a in allowed
        ), f"{source} is excluded by Dockerfile.dockerignore"


def test_dockerfile_fetches_the_connector_the_project_pins() -> None:
    add = next(ln for ln in dockerfile_lines() if ln.startswith("ADD "))
    checksum = re.search(r"--checksum=sha256:([0-9a-f]{64})", add)
    url = next(part for part in add.split() if part.startswith("https://"))
    assert checksum and url.startswith("https://repo1.maven.org/maven2/org/apache/flink/")
    pom = (ROOT / "jvm" / "flink" / "pom.xml").read_text()
    version = re.search(
        r"<artifactId>flink-sql-connector-kafka</artifactId>\s*<version>([^<]+)</version>", pom
    )
    assert version and url.endswith(f"flink-sql-connector-kafka-{version.group(1)}.jar")
    dest = add.split()[-1]
    assert dest.startswith("/opt/streaming-agents/jars/flink/")  # $SA_JARS_DIR/flink
    jar = ROOT / ".jars" / "flink" / Path(url).name
    if jar.exists():  # fetched by `make jars` from Maven Central with strict checksums
        assert hashlib.sha256(jar.read_bytes()).hexdigest() == checksum.group(1)


def test_dockerfile_environment_points_at_the_copied_files() -> None:
    env = " ".join(ln for ln in dockerfile_lines() if ln.startswith("ENV "))
    for expected in (
        "SA_REPO_ROOT=/opt/streaming-agents",
        "SA_JARS_DIR=/opt/streaming-agents/jars",
        "STREAMING_AGENTS_JOBS_DIR=/opt/streaming-agents/jobs",
        "PATH=/opt/venv/bin:$PATH",
    ):
        assert expected in env


def test_run_job_script_is_the_cli_entry() -> None:
    text = (ROOT / "deploy" / "run_job.py").read_text()
    assert "from streaming_agents.cli.jobs_cmd import entry_main" in text


# --------------------------------------------------------------------------- docker-compose


def test_compose_services_and_their_references() -> None:
    data = compose()
    services = data["services"]
    assert set(services) == {"kafka", "jobmanager", "taskmanager", "fake-llm", "submit-job"}
    declared_volumes = set(data.get("volumes") or {})
    for name, service in services.items():
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        else:
            assert "image" in service, name
        for dependency in service.get("depends_on") or {}:
            assert dependency in services, (name, dependency)
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            assert source in declared_volumes or (ROOT / source).exists(), (name, volume)
        for port in service.get("ports") or []:
            host, container = str(port).split(":")
            assert host.isdigit() and container.isdigit(), (name, port)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    kafka_env = services["kafka"]["environment"]
    assert "controller" in kafka_env["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert "PLAINTEXT://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert services["jobmanager"]["command"] == "jobmanager"
    assert services["taskmanager"]["command"] == "taskmanager"
    assert "8081:8081" in services["jobmanager"]["ports"]
    assert services["submit-job"]["restart"] == "no"


def test_compose_flink_configuration() -> None:
    services = compose()["services"]
    for name in ("jobmanager", "taskmanager"):
        props = flink_properties(services[name])
        assert props["jobmanager.rpc.address"] == "jobmanager"
        assert props["state.backend.type"] == "rocksdb"
        assert props["python.executable"] == "/opt/venv/bin/python"  # the image's venv
        assert props["execution.checkpointing.dir"].startswith("file:///flink-data/")
        assert props["execution.checkpointing.externalized-checkpoint-retention"] == (
            "RETAIN_ON_CANCELLATION"
        )
        assert "flink-data:/flink-data" in services[name]["volumes"]


def test_compose_submitter_runs_a_real_job_against_the_other_services() -> None:
    services = compose()["services"]
    submitter = services["submit-job"]
    assert submitter["entrypoint"] == ["streaming-agents"]
    args = build_parser().parse_args([str(a) for a in submitter["command"]])
    assert args.command == "submit"
    entry = load_job(args.job)
    assert entry.name == "claims_triage"
    rest = urllib.parse.urlparse(args.rest)
    assert (
        rest.hostname in services and f"{rest.port}:{rest.port}" in services["jobmanager"]["ports"]
    )
    host, port = args.bootstrap.split(":")
    assert (
        host == "kafka"
        and f"PLAINTEXT://kafka:{port}"
        in (services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"])
    )
    api = urllib.parse.urlparse(args.api_base)
    fake_command = " ".join(services["fake-llm"]["command"])
    assert api.hostname == "fake-llm" and f"--port {api.port}" in fake_command
    assert "streaming_agents.testing.fake_llm" in fake_command
    assert "/opt/streaming-agents/deploy/fake-llm-config.json" in fake_command
    # the key is read by the agents in the TaskManagers
    assert args.api_key_env in services["taskmanager"]["environment"]
    assert args.create_topics and args.sample
    for dependency in ("kafka", "jobmanager", "taskmanager", "fake-llm"):
        assert dependency in submitter["depends_on"]


# --------------------------------------------------------------------------- Kubernetes


def k8s_documents() -> dict[str, list[dict[str, Any]]]:
    docs: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.setdefault(doc["kind"], []).append(doc)
    return docs


def flink_deployment() -> dict[str, Any]:
    deployments = k8s_documents()["FlinkDeployment"]
    assert len(deployments) == 1
    return deployments[0]


def test_flinkdeployment_runs_pyflink_through_python_driver() -> None:
    deployment = flink_deployment()
    assert deployment["apiVersion"] == "flink.apache.org/v1beta1"
    spec = deployment["spec"]
    assert re.fullmatch(r"v2_\d+", spec["flinkVersion"])
    job = spec["job"]
    assert job["entryClass"] == "org.apache.flink.client.python.PythonDriver"
    assert job["jarURI"] == f"local:///opt/flink/lib/flink-python-{pyflink_version()}.jar"
    args = [str(a) for a in job["args"]]
    script = args[args.index("-py") + 1]
    assert script == "/opt/streaming-agents/deploy/run_job.py"  # COPY deploy/run_job.py there
    assert args[args.index("-pyclientexec") + 1] == "/opt/venv/bin/python"
    program = entry_parser().parse_args(args[args.index("-py") + 2 :])
    job_dir = Path(program.job_dir)
    assert job_dir.parent == Path("/opt/streaming-agents/jobs")
    assert (ROOT / "jobs" / job_dir.name / "spec.py").exists()
    assert program.api_key_env and program.model
    assert job["upgradeMode"] == "savepoint" and job["state"] == "running"
    assert job["parallelism"] >= 1


def test_flinkdeployment_checkpoints_state_and_restarts() -> None:
    conf = flink_deployment()["spec"]["flinkConfiguration"]
    assert conf["execution.checkpointing.interval"]
    assert conf["execution.checkpointing.mode"] == "EXACTLY_ONCE"
    assert conf["execution.checkpointing.dir"].startswith("file:///flink-data/")
    assert conf["execution.checkpointing.savepoint-dir"]  # required by upgradeMode savepoint
    assert conf["execution.checkpointing.externalized-checkpoint-retention"] == (
        "RETAIN_ON_CANCELLATION"
    )
    assert conf["state.backend.type"] == "rocksdb"
    assert conf["execution.checkpointing.incremental"] == "true"
    assert conf["restart-strategy.type"] in {"exponential-delay", "fixed-delay", "failure-rate"}
    assert conf["python.executable"] == "/opt/venv/bin/python"


def test_flinkdeployment_resources_volumes_and_secrets() -> None:
    docs = k8s_documents()
    spec = flink_deployment()["spec"]
    for role in ("jobManager", "taskManager"):
        resource = spec[role]["resource"]
        assert re.fullmatch(r"\d+[mg]", str(resource["memory"])) and float(resource["cpu"]) > 0
    pod = spec["podTemplate"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    container = next(c for c in pod["containers"] if c["name"] == "flink-main-container")
    for mount in container["volumeMounts"]:
        assert mount["name"] in volumes
    claims = {pvc["metadata"]["name"] for pvc in docs["PersistentVolumeClaim"]}
    pvc_volumes = [v for v in volumes.values() if "persistentVolumeClaim" in v]
    assert pvc_volumes and all(
        v["persistentVolumeClaim"]["claimName"] in claims for v in pvc_volumes
    )
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/flink-data" in mounts  # where checkpoints and savepoints go
    env = {e["name"]: e for e in container["env"]}
    program = entry_parser().parse_args(
        [str(a) for a in spec["job"]["args"][spec["job"]["args"].index("-py") + 2 :]]
    )
    assert "secretKeyRef" in env[program.api_key_env]["valueFrom"]  # the key from a Secret
    for path in K8S.glob("*.yaml"):
        assert not re.search(r"sk-[A-Za-z0-9]{8,}", path.read_text()), f"a literal key in {path}"


# --------------------------------------------------------------------------- the journal


def _kafka_journal(uri: str | None, bootstrap: str) -> urllib.parse.SplitResult:
    """``uri`` is a Kafka journal URI the workers can open, on the job's own brokers."""
    from streaming_agents.journal.factory import check_journal_uri

    assert uri, "no --journal: the workers would fall back to a SQLite file on their own disk"
    check_journal_uri(uri)
    parts = urllib.parse.urlsplit(uri)
    assert parts.scheme == "kafka" and parts.path.strip("/"), uri
    assert set(parts.netloc.split(",")) == set(bootstrap.split(",")), (uri, bootstrap)
    return parts


def test_flinkdeployment_journal_is_kafka_not_a_pod_disk() -> None:
    spec = flink_deployment()["spec"]
    args = [str(a) for a in spec["job"]["args"]]
    program = entry_parser().parse_args(args[args.index("-py") + 2 :])
    _kafka_journal(program.journal, program.bootstrap)
    assert not program.journal_dir
    pod = spec["podTemplate"]["spec"]
    assert not [v for v in pod["volumes"] if "emptyDir" in v], "a journal on an emptyDir"
    container = next(c for c in pod["containers"] if c["name"] == "flink-main-container")
    names = {e["name"] for e in container["env"]}
    assert not names & {"STREAMING_AGENTS_JOURNAL_DIR", "STREAMING_AGENTS_JOURNAL"}, names


def test_compose_submitter_uses_the_kafka_journal_on_the_compose_broker() -> None:
    services = compose()["services"]
    args = build_parser().parse_args([str(a) for a in services["submit-job"]["command"]])
    parts = _kafka_journal(args.journal, args.bootstrap)
    assert parts.hostname in services  # the kafka service of the same file
