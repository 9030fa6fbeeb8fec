"""deploy/k8s-spark: the cluster profile's kustomization (Spark jobs in client mode, their RBAC, the serving
patch, a reference Redis Cluster) is well-formed. kubectl is not needed: the structure is checked as data,
as tests/unit/test_schedule.py does for deploy/k8s."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops import jobtable
from setlist.settings import setting_variables
from tests.settings_env import settings_from_environment

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SPARK = ROOT / "deploy" / "k8s-spark"
MASTER = "k8s://https://kubernetes.default.svc:443"
# job name -> the module the driver runs (as `python -m ...`)
JOBS = {"materialize": ["feature_repo", "materialize"], "train": ["training"]}
RBAC_RESOURCES = {"pods", "services", "configmaps", "persistentvolumeclaims"}
RBAC_VERBS = {"create", "delete", "get", "list", "watch"}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _kustomization(folder: Path = SPARK) -> dict[str, Any]:
    (k,) = _docs(folder / "kustomization.yaml")
    return k


def _resources() -> list[dict[str, Any]]:
    """Every resource this kustomization adds (its own files; the base is deploy/k8s)."""
    out = []
    for entry in _kustomization()["resources"]:
        path = SPARK / entry
        if path.is_file():
            out += _docs(path)
    return out


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _resources() if d["kind"] == kind}


def _configmap(name: str) -> dict[str, str]:
    return _by_kind("ConfigMap")[name]["data"]


def _cronjobs() -> dict[str, dict[str, Any]]:
    return {name.removeprefix("setlist-spark-"): d for name, d in _by_kind("CronJob").items()}


def _pod(cronjob: dict[str, Any]) -> dict[str, Any]:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _container(cronjob: dict[str, Any]) -> dict[str, Any]:
    (container,) = _pod(cronjob)["containers"]
    return container


def _confs(args: list[str]) -> dict[str, str]:
    """spark-submit's --conf key=value pairs."""
    return dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--conf")


def _flag(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in args, from the container's environment."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def _env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as Kubernetes builds it: envFrom ConfigMaps in order, then env."""
    env: dict[str, str] = {}
    configmaps = _by_kind("ConfigMap")
    base_configmaps = {d["metadata"]["name"]: d for d in _docs(K8S / "configmap.yaml")}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref:
            env.update((configmaps.get(ref["name"]) or base_configmaps[ref["name"]])["data"])
    for e in container.get("env", []):
        env[e["name"]] = e.get("value", f"<{e['name']}>")
    return env


# -- the kustomization ----------------------------------------------------------------------------


def test_every_resource_named_in_the_kustomization_exists():
    k = _kustomization()
    assert k["kind"] == "Kustomization" and k["namespace"] == "setlist"
    for entry in k["resources"]:
        path = (SPARK / entry).resolve()
        assert path.exists(), entry
        if path.is_dir():
            assert (path / "kustomization.yaml").is_file(), entry
        else:
            assert _docs(path), entry
    for patch in k.get("patches", []):
        if "path" in patch:
            assert (SPARK / patch["path"]).is_file(), patch["path"]
    assert "../k8s" in k["resources"], "the overlay builds on the base deploy/k8s"


def test_every_yaml_file_is_listed_or_is_the_example_secret():
    listed = set(_kustomization()["resources"]) | {p["path"] for p in _kustomization()["patches"] if "path" in p}
    for path in SPARK.glob("*.yaml"):
        assert path.name in listed | {"kustomization.yaml", "secret.example.yaml"}, path.name
        for doc in _docs(path):
            assert {"apiVersion", "kind"} <= set(doc), path.name
            assert doc["kind"] == "Kustomization" or doc["metadata"]["name"], path.name
    assert "secret.example.yaml" not in listed  # rendered with envsubst, as the base's


def test_the_base_materialize_and_train_cronjobs_are_replaced_not_doubled():
    deleted = set()
    for patch in _kustomization()["patches"]:
        if "patch" in patch:
            doc = yaml.safe_load(patch["patch"])
            assert doc["$patch"] == "delete"
            deleted.add((doc["kind"], doc["metadata"]["name"]))
    base = {d["metadata"]["name"] for d in _docs(K8S / "cronjobs.yaml") if d["kind"] == "CronJob"}
    assert {("CronJob", f"setlist-{job}") for job in JOBS} == deleted
    assert {name for _, name in deleted} <= base  # a delete patch of a missing resource fails the build


def test_the_images_entry_matches_the_image_the_executors_are_given():
    (image,) = [i for i in _kustomization()["images"] if i["name"] == "setlist-spark"]
    assert _configmap("setlist-spark-config")["SPARK_JOB_IMAGE"] == f"{image['newName']}:{image['newTag']}"
    for cronjob in _cronjobs().values():
        assert _container(cronjob)["image"] == "setlist-spark"


# -- the Spark jobs -------------------------------------------------------------------------------


def test_the_spark_cronjobs_run_spark_submit_in_client_mode_on_the_k8s_master():
    cronjobs = _cronjobs()
    assert set(cronjobs) == set(JOBS)
    for job, module in JOBS.items():
        container = _container(cronjobs[job])
        args = [_expand(a, _env(container)) for a in container["args"]]
        assert container["command"] == ["/app/.venv/bin/spark-submit"], job
        assert _flag(args, "--master") == MASTER, job
        assert _flag(args, "--deploy-mode") == "client", job
        # the driver is the Setlist process: `python -m <module>` through the launcher
        launcher = "/etc/setlist/spark/run_module.py"
        assert args[args.index(launcher) + 1 :] == module, job
        confs = _confs(args)
        assert confs["spark.kubernetes.container.image"] == _configmap("setlist-spark-config")["SPARK_JOB_IMAGE"]
        assert confs["spark.kubernetes.namespace"] == "<POD_NAMESPACE>", job  # the pod's own, downward API
        assert confs["spark.kubernetes.driver.pod.name"], job  # executors are owned by (and die with) the pod
        assert _flag(args, "--packages").startswith("org.apache.hadoop:hadoop-aws:"), job


def test_the_hadoop_aws_version_is_the_hadoop_of_the_installed_spark():
    pyspark = pytest.importorskip("pyspark")
    jars = Path(pyspark.__file__).parent / "jars"
    (client,) = jars.glob("hadoop-client-api-*.jar")
    hadoop = client.name.removeprefix("hadoop-client-api-").removesuffix(".jar")
    assert _configmap("setlist-spark-config")["SPARK_JOB_PACKAGES"] == f"org.apache.hadoop:hadoop-aws:{hadoop}"


def test_the_launcher_runs_the_module_like_python_dash_m(tmp_path):
    source = _configmap("setlist-spark-files")["run_module.py"]
    (tmp_path / "run_module.py").write_text(source, encoding="utf-8")
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "probe" / "__main__.py").write_text(
        "import sys\nprint(__name__, sys.argv[1:])\nraise SystemExit(3)\n", encoding="utf-8"
    )
    done = subprocess.run(
        [sys.executable, str(tmp_path / "run_module.py"), "probe", "materialize", "--full"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "__main__ ['materialize', '--full']", done.stderr
    assert done.returncode == 3  # the job's exit code reaches spark-submit, then the Job


def test_client_mode_driver_is_reachable_through_its_headless_service():
    services = _by_kind("Service")
    for job, cronjob in _cronjobs().items():
        container = _container(cronjob)
        confs = _confs(container["args"])
        host = confs["spark.driver.host"]
        service = services[host.split(".", 1)[0]]
        assert service["spec"]["clusterIP"] == "None", job
        labels = cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items(), job
        ports = {p["port"] for p in service["spec"]["ports"]}
        assert {int(confs["spark.driver.port"]), int(confs["spark.driver.blockManager.port"])} == ports, job
        assert {p["containerPort"] for p in container["ports"]} == ports, job
        # the other job's Service must not select this driver
        for name, other in services.items():
            if name != service["metadata"]["name"] and "spark-driver" in str(other["spec"].get("selector")):
                assert not other["spec"]["selector"].items() <= labels.items(), (job, name)


def test_the_spark_cronjobs_set_the_cluster_profile_and_valid_settings():
    fields = set(setting_variables())
    spark_config = _configmap("setlist-spark-config")
    assert spark_config["SETLIST_PROFILE"] == "cluster"
    assert spark_config["SETLIST_SPARK_MASTER"] == MASTER
    for key in ("SETLIST_SPARK_EVENTS_PATH", "SETLIST_SPARK_FEATURES_PATH", "SETLIST_SPARK_STAGING"):
        assert spark_config[key].startswith("s3a://"), key
    conf = json.loads(spark_config["SETLIST_SPARK_CONF"])
    assert "spark.hadoop.fs.s3a.endpoint" in conf and "spark.hadoop.fs.s3a.aws.credentials.provider" in conf
    assert {k for k in spark_config if k.startswith("SETLIST_")} <= fields
    # the settings object reads them: the cluster profile, the master, the node list, the JSON conf
    env = {k: v for k, v in spark_config.items() if k.startswith("SETLIST_")}
    settings = settings_from_environment(env)
    assert settings.on_spark and settings.spark_master == MASTER and len(settings.redis_cluster_nodes) == 3
    assert settings.spark_conf == conf  # the JSON reads as a pod's environment gives it
    for job, cronjob in _cronjobs().items():
        container = _container(cronjob)
        env = _env(container)
        assert env["SETLIST_PROFILE"] == "cluster", job
        assert {n for n in env if n.startswith("SETLIST_")} <= fields, job
        names = [s.get("configMapRef", {}).get("name") for s in container["envFrom"]]
        assert names.index("setlist-spark-config") > names.index("setlist-config"), job  # later wins


def test_the_spark_cronjobs_follow_the_schedule():
    schedule = jobtable.load()
    for job, cronjob in _cronjobs().items():
        spec = cronjob["spec"]
        entry = schedule.jobs[job]
        assert spec["schedule"] == entry.cron, job
        assert spec["timeZone"] == schedule.timezone, job
        assert spec["concurrencyPolicy"] == "Forbid", job
        assert spec["jobTemplate"]["spec"]["backoffLimit"] == entry.retries, job
        assert _pod(cronjob)["activeDeadlineSeconds"] == entry.deadline_s, job
        budget = jobtable.run_budget_s(entry, schedule.backoff)
        assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] == budget, job
        assert _pod(cronjob)["restartPolicy"] == "Never", job


def test_the_spark_cronjobs_run_like_the_base_jobs():
    (deployment,) = _docs(K8S / "serving-deployment.yaml")
    serving_pod = deployment["spec"]["template"]["spec"]
    (serving,) = serving_pod["containers"]
    for job, cronjob in _cronjobs().items():
        pod, container = _pod(cronjob), _container(cronjob)
        assert pod["securityContext"] == serving_pod["securityContext"], job
        assert container["securityContext"] == serving["securityContext"], job
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["data"] == {v["name"]: v for v in serving_pod["volumes"]}["data"], job
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        configmap = volumes[next(n for n, p in mounts.items() if p == "/etc/setlist/spark")]["configMap"]["name"]
        files = _configmap(configmap)
        confs = _confs(container["args"])
        template = confs["spark.kubernetes.executor.podTemplateFile"]
        assert Path(template).parent == Path("/etc/setlist/spark") and Path(template).name in files, job
        assert mounts["tmp"] == "/tmp", job
        labels = cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "setlist", job


def test_the_executor_pod_template_carries_settings_secrets_and_the_network_label():
    files = _configmap("setlist-spark-files")
    template = yaml.safe_load(files["executor-pod-template.yaml"])
    assert template["kind"] == "Pod"
    assert template["metadata"]["labels"]["app.kubernetes.io/part-of"] == "setlist"
    (container,) = template["spec"]["containers"]
    for cronjob in _cronjobs().values():
        confs = _confs(_container(cronjob)["args"])
        assert confs["spark.kubernetes.executor.podTemplateContainerName"] == container["name"]
        # executors read the same settings and object-store credentials as their driver
        assert container["envFrom"] == _container(cronjob)["envFrom"]
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True


# -- RBAC -----------------------------------------------------------------------------------------


def test_the_driver_service_account_may_manage_its_executors():
    accounts, roles, bindings = _by_kind("ServiceAccount"), _by_kind("Role"), _by_kind("RoleBinding")
    for job, cronjob in _cronjobs().items():
        account = _pod(cronjob)["serviceAccountName"]
        assert account in accounts, job
        bound = [
            b
            for b in bindings.values()
            if {"kind": "ServiceAccount", "name": account}
            in [{k: s[k] for k in ("kind", "name")} for s in b["subjects"]]
        ]
        assert bound, f"{account} is bound to no Role"
        for binding in bound:
            assert binding["roleRef"]["kind"] == "Role" and binding["roleRef"]["name"] in roles, job
            rules = roles[binding["roleRef"]["name"]]["rules"]
            granted = {
                (r, v) for rule in rules if "" in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
            }
            assert {(r, v) for r in RBAC_RESOURCES for v in RBAC_VERBS} <= granted, job
            assert not any("*" in rule["verbs"] or "*" in rule["resources"] for rule in rules)


# -- serving and Redis Cluster --------------------------------------------------------------------


def test_the_serving_patch_points_the_base_deployment_at_redis_cluster():
    (base,) = _docs(K8S / "serving-deployment.yaml")
    (patch,) = _docs(SPARK / "serving-cluster-patch.yaml")
    assert (patch["kind"], patch["metadata"]["name"]) == (base["kind"], base["metadata"]["name"])
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    (base_container,) = base["spec"]["template"]["spec"]["containers"]
    assert container["name"] == base_container["name"]  # strategic merge by name, not a second container
    env = {e["name"]: e for e in container["env"]}
    assert env["SETLIST_PROFILE"]["value"] == "cluster"
    ref = env["SETLIST_REDIS_CLUSTER_NODES"]["valueFrom"]["configMapKeyRef"]
    assert ref["key"] in _configmap(ref["name"])


def test_the_reference_redis_cluster_is_formed_from_its_statefulset():
    (statefulset,) = _by_kind("StatefulSet").values()
    replicas = statefulset["spec"]["replicas"]
    (job,) = [j for j in _by_kind("Job").values() if "redis-cluster" in j["metadata"]["name"]]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    script = "\n".join(container["args"])
    assert "redis-cli --cluster create" in script
    replicas_per_master = int(re.search(r"--cluster-replicas (\d+)", script).group(1))
    assert replicas // (replicas_per_master + 1) >= 3  # at least three masters
    assert f"for i in {' '.join(str(i) for i in range(replicas))};" in script
    (redis,) = statefulset["spec"]["template"]["spec"]["containers"]
    args = redis["args"]
    assert args[args.index("--cluster-enabled") + 1] == "yes"
    service = _by_kind("Service")[statefulset["spec"]["serviceName"]]
    assert service["spec"]["clusterIP"] == "None"
    assert {p["port"] for p in service["spec"]["ports"]} == {6379, 16379}
    # the seed nodes the settings name are pods of this StatefulSet, on its Service
    for node in _configmap("setlist-spark-config")["SETLIST_REDIS_CLUSTER_NODES"].split(","):
        host, port = node.strip().rsplit(":", 1)
        pod, svc = host.split(".", 1)
        assert svc == statefulset["spec"]["serviceName"] and port == "6379", node
        assert int(pod.rsplit("-", 1)[1]) < replicas, node


# -- secrets --------------------------------------------------------------------------------------


def test_no_secret_value_is_committed():
    (secret,) = _docs(SPARK / "secret.example.yaml")
    assert secret["kind"] == "Secret" and "data" not in secret
    for key, value in secret["stringData"].items():
        assert value == f"${{{key}}}", key  # an envsubst placeholder, nothing else
    pattern = re.compile(r"(AKIA[0-9A-Z]{16}|secret_?key\s*[:=]\s*[^$\s]|password\s*[:=]\s*[^$\s{])", re.I)
    for path in SPARK.iterdir():
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not pattern.search(text), path.name
    for doc in _resources():
        assert doc["kind"] != "Secret", doc["metadata"]["name"]  # Secrets come from the rendered example only
    conf = json.loads(_configmap("setlist-spark-config")["SETLIST_SPARK_CONF"])
    assert not any("secret" in k.lower() or "access.key" in k.lower() for k in conf)


def test_every_secret_a_pod_reads_is_an_example_secret():
    examples = {d["metadata"]["name"] for p in (K8S, SPARK) for d in _docs(p / "secret.example.yaml")}
    files = _configmap("setlist-spark-files")
    templates = [yaml.safe_load(files["executor-pod-template.yaml"])["spec"]["containers"][0]]
    for container in [_container(c) for c in _cronjobs().values()] + templates:
        for source in container["envFrom"]:
            if "secretRef" in source:
                assert source["secretRef"]["name"] in examples


# -- the executor entrypoint ----------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_executor_entrypoint_starts_the_executor_backend(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "java").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n', encoding="utf-8")
    (fake / "java").chmod((fake / "java").stat().st_mode | stat.S_IXUSR)
    env = {
        "PATH": f"{fake}:{os.environ['PATH']}",
        "SPARK_HOME": "/spark",
        "SPARK_EXECUTOR_MEMORY": "6g",
        "SPARK_DRIVER_URL": "spark://CoarseGrainedScheduler@driver:7078",
        "SPARK_EXECUTOR_ID": "3",
        "SPARK_EXECUTOR_CORES": "2",
        "SPARK_APPLICATION_ID": "spark-abc",
        "SPARK_EXECUTOR_POD_IP": "10.0.0.9",
        "SPARK_RESOURCE_PROFILE_ID": "0",
        "SPARK_EXECUTOR_POD_NAME": "setlist-materialize-exec-3",
        "SPARK_JAVA_OPT_1": "-Dspark.driver.port=7078",
        "SPARK_JAVA_OPT_0": "-Dspark.app.id=spark-abc",
    }
    done = subprocess.run(
        ["bash", str(SPARK / "spark-entrypoint.sh"), "executor"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    argv = done.stdout.splitlines()
    assert argv[:2] == ["-Dspark.app.id=spark-abc", "-Dspark.driver.port=7078"]  # in their order
    assert "-Xmx6g" in argv and argv[argv.index("-cp") + 1] == "/spark/jars/*"
    assert "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend" in argv
    assert argv[argv.index("--driver-url") + 1] == env["SPARK_DRIVER_URL"]
    assert argv[argv.index("--podName") + 1] == env["SPARK_EXECUTOR_POD_NAME"]
    passthrough = subprocess.run(
        ["bash", str(SPARK / "spark-entrypoint.sh"), "echo", "driver"], env=env, capture_output=True, text=True
    )
    assert passthrough.stdout.strip() == "driver"


def test_the_dockerfile_builds_on_the_setlist_image_with_java_and_the_entrypoint():
    text = (SPARK / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM \$\{SETLIST_IMAGE\}", text, re.M)
    assert "openjdk-17-jre-headless" in text
    assert "COPY deploy/k8s-spark/spark-entrypoint.sh" in text and "spark-entrypoint.sh" in text.split("ENTRYPOINT")[-1]
    uid = {_pod(c)["securityContext"]["runAsUser"] for c in _cronjobs().values()}
    assert uid == {10001} and "--uid 10001" in text  # Hadoop needs a passwd entry for the pods' uid
