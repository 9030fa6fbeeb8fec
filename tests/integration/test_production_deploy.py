"""deploy/: the Kubernetes manifests and the Feast Spark configuration stay consistent with the code."""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

import pytest
import yaml

from setlist.settings import setting_variables
from tests.settings_env import settings_from_environment

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
FEAST_SPARK = DEPLOY / "feast-spark" / "feature_store.yaml"
GRPC_PORT = 50051
# Settings the manifests already pass, which setlist/settings.py does not read yet.
PENDING_SETTINGS: set[str] = set()


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _all_docs() -> list[dict]:
    return [d for p in sorted(K8S.glob("*.yaml")) for d in _docs(p.name)]


def _serving_container() -> dict:
    (deployment,) = _docs("serving-deployment.yaml")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_kustomization_lists_existing_files_and_keeps_the_secret_template_out():
    (kustomization,) = _docs("kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    assert "secret.example.yaml" not in kustomization["resources"]
    listed = set(kustomization["resources"]) | {"kustomization.yaml", "secret.example.yaml"}
    assert {p.name for p in K8S.glob("*.yaml")} == listed


def test_every_setlist_variable_is_a_setting():
    fields = set(setting_variables())
    names = set()
    for doc in _all_docs():
        if doc["kind"] in ("ConfigMap", "Secret"):
            names |= set(doc.get("data") or {}) | set(doc.get("stringData") or {})
    names |= {e["name"] for e in _serving_container().get("env", [])}
    setlist_names = {n for n in names if n.startswith("SETLIST_")}
    assert setlist_names - fields - PENDING_SETTINGS == set()
    assert {"SETLIST_PROFILE", "SETLIST_REDIS_URL", "SETLIST_DATABASE_URL", "SETLIST_HMAC_KEY"} <= setlist_names


def test_config_values_are_valid_settings():
    (config,) = _docs("configmap.yaml")
    data = config["data"]
    settings = settings_from_environment(data)
    assert settings.profile == "production"
    assert settings.port == GRPC_PORT
    assert settings.cache_store == "redis"


def test_secrets_are_placeholders_only():
    (secret,) = _docs("secret.example.yaml")
    for key, value in secret["stringData"].items():
        assert value == f"${{{key}}}", f"{key} must be a ${{VAR}} placeholder, not a value"


def _config() -> dict[str, str]:
    (config,) = _docs("configmap.yaml")
    return config["data"]


def test_serving_uses_native_grpc_probes_and_exposes_metrics():
    container = _serving_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == GRPC_PORT
    # the kubelet's gRPC probes cannot speak TLS: they use the plaintext health-only port
    assert ports["grpc-health"] == int(_config()["SETLIST_HEALTH_PORT"]) != GRPC_PORT
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == ports["grpc-health"], probe
    (deployment,) = _docs("serving-deployment.yaml")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SETLIST_PROFILE"] == "production"
    assert container["resources"]["requests"]["cpu"], "the HPA scales on CPU requests"


def test_hpa_targets_the_serving_deployment():
    (hpa,) = _docs("hpa.yaml")
    (deployment,) = _docs("serving-deployment.yaml")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_feast_spark_config_uses_spark_store_and_engine_with_placeholders(monkeypatch):
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig
    from feast.infra.registry.sql import SqlRegistryConfig
    from feast.repo_config import (
        BATCH_ENGINE_CLASS_FOR_TYPE,
        OFFLINE_STORE_CLASS_FOR_TYPE,
        RepoConfig,
        load_repo_config,
    )

    text = FEAST_SPARK.read_text()
    raw = yaml.safe_load(text)
    assert raw["offline_store"]["type"] in OFFLINE_STORE_CLASS_FOR_TYPE
    assert OFFLINE_STORE_CLASS_FOR_TYPE[raw["offline_store"]["type"]].endswith("SparkOfflineStore")
    assert BATCH_ENGINE_CLASS_FOR_TYPE[raw["batch_engine"]["type"]].endswith("SparkComputeEngine")
    assert raw["online_store"]["type"] == "redis" and raw["registry"]["registry_type"] == "sql"
    # Every credential-bearing value is a ${VAR}.
    for value in (raw["registry"]["path"], raw["online_store"]["connection_string"]):
        assert re.fullmatch(r"\$\{[A-Z_]+\}", value), value

    monkeypatch.setenv("SETLIST_FEAST_REGISTRY_URL", "postgresql+psycopg://setlist:pw@db:5432/setlist")
    monkeypatch.setenv("SETLIST_FEAST_REDIS_TYPE", "redis_cluster")
    monkeypatch.setenv("SETLIST_FEAST_REDIS", "redis-0:6379,redis-1:6379,password=pw")
    monkeypatch.setenv("SPARK_MASTER", "local[2]")
    monkeypatch.setenv("SETLIST_SPARK_STAGING", "s3://bucket/staging")
    expanded = yaml.safe_load(os.path.expandvars(text))  # what Feast does when it loads the file
    registry = SqlRegistryConfig(**expanded["registry"])
    assert registry.path.startswith("postgresql+psycopg://")
    online = RedisOnlineStoreConfig(**expanded["online_store"])
    assert online.redis_type.value == "redis_cluster"

    # The Spark parts import pyspark, which is optional (docs/production.md has the smoke test).
    pytest.importorskip("pyspark")
    config: RepoConfig = load_repo_config(FEAST_SPARK.parent, FEAST_SPARK)
    assert config.offline_store.spark_conf["spark.master"] == "local[2]"
    assert config.batch_engine.type == "spark.engine"


def test_the_image_copies_every_package_its_build_and_entrypoint_import():
    """`make setup` inside the image runs Makefile recipes (`python -m scripts.protogen`), the entry
    point runs `python -m serving`, the CronJobs their stages and the docs `kubectl exec` commands in a
    pod: each top-level package those run must be copied."""
    root = DEPLOY.parent
    copied = set(re.findall(r"^COPY (\w+) \1$", (root / "Dockerfile").read_text(), re.M))
    makefile = (root / "Makefile").read_text()
    recipe = makefile[makefile.index("\nprotos:") : makefile.index("\n\n", makefile.index("\nprotos:"))]
    needed = {m.split(".")[0] for m in re.findall(r"-m ([\w.]+)", recipe)} | {"serving", "setlist", "feature_repo"}
    jobs = (K8S / "cronjobs.yaml").read_text()
    needed |= {m.split(".")[0] for m in re.findall(r'"-m", "([\w.]+)"', jobs)}
    docs = "\n".join(p.read_text() for p in (root / "docs").rglob("*.md"))
    in_pods = re.findall(r"kubectl [^`\n]*exec [^`\n]*-m ([\w.]+)", docs)
    assert "ops" in in_pods  # the docs' own example
    needed |= {m.split(".")[0] for m in in_pods}
    assert needed <= copied, f"the Dockerfile does not copy {sorted(needed - copied)}"


def _image_paths(dockerfile: str) -> dict[str, str]:
    """Each repository path a COPY line copies from the build context → where it lands in the image, as Docker
    places it: ``dest/<name>`` for several sources or a ``dest`` ending in ``/``, else ``dest``, relative to the
    WORKDIR in force (copies from another stage are not the context's)."""
    placed: dict[str, str] = {}
    workdir = "/"
    for keyword, rest in re.findall(r"^(WORKDIR|COPY) (.+)$", dockerfile, re.M):
        if keyword == "WORKDIR":
            workdir = rest.strip()
            continue
        words = rest.split()
        if any(w.startswith("--from") for w in words):
            continue
        *sources, dest = [w for w in words if not w.startswith("--")]
        base = posixpath.normpath(posixpath.join(workdir, dest))
        into = len(sources) > 1 or dest.endswith("/")
        for src in sources:
            src = src.rstrip("/")
            placed[src] = posixpath.join(base, posixpath.basename(src)) if into else base
    return placed


def test_the_image_holds_every_file_a_setting_defaults_to():
    """A setting whose default is a file of the repository (the tiers, prices, SLOs) reads it relative to the
    working directory: the image must hold it there, or a pod silently runs without it (Track's default
    tiers) or refuses (`ops status`: no SLO file)."""
    from setlist.settings import Settings

    root = DEPLOY.parent
    dockerfile = (root / "Dockerfile").read_text()
    (workdir,) = re.findall(r"^WORKDIR (\S+)$", dockerfile, re.M)
    placed = _image_paths(dockerfile)

    def in_image(path: str) -> str | None:
        for src, dest in placed.items():
            if path == src or path.startswith(src + "/"):
                return dest + path[len(src) :]
        return None

    defaults = [
        str(f.default)
        for f in Settings.model_fields.values()
        if isinstance(f.default, Path) and not f.default.is_absolute() and (root / f.default).is_file()
    ]
    assert set(defaults) >= {"tiers.yaml", "cost.yaml", "deploy/prometheus/slo.yaml"}
    wrong = {d: in_image(d) for d in defaults if in_image(d) != f"{workdir}/{d}"}
    assert not wrong, f"the image does not hold these where the settings look ({workdir}/…): {wrong}"
    # the placing rule itself, on the forms a wrong line would take
    assert _image_paths("WORKDIR /app\nCOPY a/b/c.yaml ./\n")["a/b/c.yaml"] == "/app/c.yaml"
    assert _image_paths("WORKDIR /app\nCOPY x.yaml y.yaml /etc/s/\n")["x.yaml"] == "/etc/s/x.yaml"
    assert _image_paths("WORKDIR /app\nCOPY deploy deploy\n")["deploy"] == "/app/deploy"
    assert _image_paths("WORKDIR /app\nCOPY t.yaml /app/t.yaml\n")["t.yaml"] == "/app/t.yaml"
    assert _image_paths("WORKDIR /app\nCOPY --from=build t.yaml t.yaml\n") == {}


def _image_interpreter() -> str:
    """The interpreter the Dockerfile's entry point runs, as an absolute path (its venv under WORKDIR)."""
    dockerfile = (DEPLOY.parent / "Dockerfile").read_text()
    (workdir,) = re.findall(r"^WORKDIR (\S+)$", dockerfile, re.M)
    (entrypoint,) = re.findall(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.M)
    interpreter = yaml.safe_load(entrypoint)[0]
    return interpreter if interpreter.startswith("/") else f"{workdir.rstrip('/')}/{interpreter}"


def _containers() -> list[dict]:
    found = []
    for doc in _all_docs():
        template = doc.get("spec", {}).get("template", {}).get("spec", {})
        found += template.get("containers", []) + template.get("initContainers", [])
    return found


def test_every_python_command_runs_the_images_own_interpreter():
    interpreter = _image_interpreter()
    assert interpreter == "/app/.venv/bin/python"
    runs_python = [c for c in _containers() if any("python" in part for part in c.get("command", []))]
    assert runs_python, "the serving container runs python"
    for container in runs_python:
        assert container["command"][0] == interpreter, container["name"]


def test_production_config_requires_tls_and_tokens():
    config = _config()
    container = _serving_container()
    env = {e["name"] for e in container.get("env", [])}
    assert "SETLIST_INSECURE" not in config and "SETLIST_INSECURE" not in env
    settings = settings_from_environment(config)
    assert not settings.insecure
    # the certificate and key are files of a mounted Secret; the tokens are in the Secret's template
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in _docs("serving-deployment.yaml")[0]["spec"]["template"]["spec"]["volumes"]}
    for path in (settings.tls_cert, settings.tls_key):
        assert path is not None
        (volume,) = [name for name, mount in mounts.items() if str(path).startswith(mount + "/")]
        assert "secret" in volumes[volume]
    (secret,) = _docs("secret.example.yaml")
    assert "SETLIST_AUTH_TOKENS" in secret["stringData"]


def test_metrics_and_grpc_are_admitted_only_from_where_they_should_be():
    config = _config()
    settings = settings_from_environment(config)
    assert settings.metrics_host == "0.0.0.0"  # scraped on the pod IP, so the policy below is what limits it
    ports = {p["name"]: p["containerPort"] for p in _serving_container()["ports"]}
    assert ports["metrics"] == settings.metrics_port
    (policy,) = [d for d in _docs("networkpolicy.yaml") if d["metadata"]["name"] == "setlist-serving"]
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "setlist-serving"}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    admitted: dict[int, list[dict]] = {}
    for rule in policy["spec"]["ingress"]:
        assert rule.get("from") and rule.get("ports"), "a rule without peers or ports admits everyone"
        for port in rule["ports"]:
            admitted.setdefault(port["port"], []).extend(rule["from"])
    assert set(admitted) == {GRPC_PORT, settings.metrics_port, settings.health_port}
    # metrics: Prometheus in the monitoring namespace, and this namespace's operator pods (no namespaceSelector)
    operator = {"podSelector": {"matchLabels": {"setlist.io/operator": "true"}}}
    scraper = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    assert sorted(map(str, admitted[settings.metrics_port])) == sorted(map(str, [scraper, operator]))
    assert admitted[settings.health_port] == [operator]  # the health port: the operator pods alone
    (client,) = admitted[GRPC_PORT]
    assert client["podSelector"]["matchLabels"] == {"setlist.io/client": "true"}


def test_ops_status_runs_on_demand_from_where_the_policy_admits_it():
    settings = settings_from_environment(_config())
    (cronjob,) = _docs("ops-status.yaml")
    assert cronjob["kind"] == "CronJob" and cronjob["spec"]["suspend"] is True  # a template for one-off Jobs
    template = cronjob["spec"]["jobTemplate"]["spec"]["template"]
    assert template["metadata"]["labels"]["setlist.io/operator"] == "true"
    (container,) = template["spec"]["containers"]
    assert container["command"][-3:] == ["-m", "ops", "status"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    # every ready serving pod through the headless Service, on the plaintext health port the policy admits
    host, port = env["SETLIST_STATUS_TARGET"].rsplit(":", 1)
    (headless,) = [d for d in _docs("serving-service.yaml") if d["spec"].get("clusterIP") == "None"]
    assert host == headless["metadata"]["name"] and int(port) == settings.health_port
    assert headless["spec"]["selector"] == {"app.kubernetes.io/name": "setlist-serving"}
    status = settings_from_environment({**_config(), **{k: v for k, v in env.items() if k.startswith("SETLIST_")}})
    assert status.workers == 1 and status.metrics_port == settings.metrics_port  # the one metrics port admitted
