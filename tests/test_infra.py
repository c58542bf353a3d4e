"""Deployment artifacts under infra/: parse and validate them without starting Ray or touching S3.

* infra/serve_config.yaml and the RayService's serveConfigV2 pass Ray's own ServeDeploySchema;
* their import path resolves to a builder that accepts their ``args`` (as Serve would call it);
* they tune exactly the deployments in the bound application graph, and the overrides apply;
* the numbers agree with the decorator defaults in deployments/options.py;
* the S3 lifecycle configuration and CDN bucket policy are well-formed JSON with the rules we rely on.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
SERVE_CONFIG = INFRA / "serve_config.yaml"
RAYSERVICE = INFRA / "kuberay" / "rayservice.yaml"
LIFECYCLE = INFRA / "s3" / "lifecycle.json"
CDN_POLICY = INFRA / "s3" / "bucket-policy-cdn.json"

REQUIRED_DEPLOYMENTS = {"Ingress", "TextFrontend", "Synthesizer-piper", "Synthesizer-kokoro"}
# deployment name -> options dict in deployments/options.py
OPTION_NAMES = {
    "Ingress": "INGRESS",
    "TextFrontend": "TEXT_FRONTEND",
    "Synthesizer-piper": "SYNTHESIZER",
    "Synthesizer-kokoro": "SYNTHESIZER",
    "SpeakerEmbeddingCache": "SPEAKER_CACHE",
    "RateLimiter": "RATE_LIMITER",
    "VoiceMatcher": "VOICE_MATCHER",
}


def validate_serve_config(data: dict):
    """Ray's schema, whichever pydantic API this Ray version exposes."""
    from ray.serve.schema import ServeDeploySchema

    if hasattr(ServeDeploySchema, "model_validate"):
        return ServeDeploySchema.model_validate(data)
    return ServeDeploySchema.parse_obj(data)  # pragma: no cover - Ray with pydantic v1 models


def load_serve_config() -> dict:
    return yaml.safe_load(SERVE_CONFIG.read_text())


def load_rayservice() -> dict:
    docs = [d for d in yaml.safe_load_all(RAYSERVICE.read_text()) if d]
    services = [d for d in docs if d.get("kind") == "RayService"]
    assert len(services) == 1, "expected exactly one RayService document"
    return services[0]


def rayservice_serve_config() -> dict:
    serve_config_v2 = load_rayservice()["spec"]["serveConfigV2"]
    assert isinstance(serve_config_v2, str), "serveConfigV2 must be a YAML string (a `|` block)"
    return yaml.safe_load(serve_config_v2)


def bound_deployments(app) -> dict:
    """name -> Deployment for every deployment reachable from a bound Application.

    Walks the ``.bind()`` arguments the way Serve's builder does (Applications nested in
    init args/kwargs, lists, tuples and dicts)."""
    from ray.serve.deployment import Application

    found: dict = {}

    def walk(obj) -> None:
        if isinstance(obj, Application):
            deployment = obj._bound_deployment
            if deployment.name in found:
                return
            found[deployment.name] = deployment
            walk(deployment.init_args)
            walk(deployment.init_kwargs)
        elif isinstance(obj, (list, tuple, set)):
            for item in obj:
                walk(item)
        elif isinstance(obj, dict):
            for item in obj.values():
                walk(item)

    walk(app)
    return found


def build(import_path: str, args: dict):
    """Resolve ``module:attr`` and call it with ``args`` exactly as Serve does for a builder."""
    module_name, _, attr = import_path.partition(":")
    builder = getattr(importlib.import_module(module_name), attr)
    try:
        from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    except ImportError:  # pragma: no cover - private API moved; fall back to a plain call
        return builder(args)
    return call_user_app_builder_with_args_if_necessary(builder, args)


CONFIGS = {
    "serve_config.yaml": load_serve_config,
    "rayservice.serveConfigV2": rayservice_serve_config,
}


@pytest.fixture(params=sorted(CONFIGS))
def config(request) -> dict:
    return CONFIGS[request.param]()


# --------------------------------------------------------------------------- serve configs


def test_serve_config_passes_rays_schema(config):
    schema = validate_serve_config(config)
    assert len(schema.applications) == 1
    app = schema.applications[0]
    assert app.name == "voxserve"
    assert app.route_prefix == "/"
    assert app.import_path == "serve_app.app:build_app"
    assert schema.http_options.port == 8000


def test_local_config_listens_on_loopback():
    schema = validate_serve_config(load_serve_config())
    assert schema.http_options.host == "127.0.0.1"
    assert schema.applications[0].args == {"auth": "required"}


def test_import_path_is_the_builder():
    assert callable(importlib.import_module("serve_app.app").build_app)


def test_args_are_settings_fields(config):
    """Settings ignores unknown keys, so a typo in ``args`` would be silently dropped."""
    from tts_engine.settings import Settings

    args = config["applications"][0].get("args") or {}
    unknown = set(args) - set(Settings.model_fields)
    assert not unknown, f"args not in Settings: {sorted(unknown)}"
    Settings(**args)


def test_deployments_exist_in_app_and_overrides_apply(config):
    app_config = config["applications"][0]
    app = build(app_config["import_path"], app_config.get("args") or {})
    graph = bound_deployments(app)
    assert REQUIRED_DEPLOYMENTS <= set(graph), sorted(graph)

    listed = [d["name"] for d in app_config["deployments"]]
    assert len(listed) == len(set(listed)), f"duplicate deployment entries: {listed}"
    # Serve refuses a config that names a deployment the application does not have.
    missing = set(listed) - set(graph)
    assert not missing, f"config names deployments not in the app: {sorted(missing)}; app has {sorted(graph)}"
    # ... and silently keeps decorator defaults for one it does not list: tune them all.
    untuned = set(graph) - set(listed)
    assert not untuned, f"app deployments missing from the config: {sorted(untuned)}"

    for entry in app_config["deployments"]:
        overrides = {k: v for k, v in entry.items() if k != "name"}
        graph[entry["name"]].options(**overrides)  # raises on options Serve would reject


def test_queue_limits_match_deployment_defaults(config):
    import deployments.options as options

    for entry in config["applications"][0]["deployments"]:
        defaults = getattr(options, OPTION_NAMES[entry["name"]])
        for key in ("max_ongoing_requests", "max_queued_requests"):
            assert entry[key] == defaults[key], (entry["name"], key)
        assert 0 < entry["ray_actor_options"]["num_cpus"] <= 1, "fractional or one CPU expected"
        assert entry["autoscaling_config"]["target_ongoing_requests"] <= entry["max_ongoing_requests"]


@pytest.mark.parametrize("cpus", [1, 2, 3, 4, 8, 16, 64])
def test_defaults_fit_the_machine_with_room_for_a_replacement(cpus):
    """At max scale every deployment's replicas fit the CPUs Ray reports, and (from 2 CPUs) one
    more Synthesizer replica still fits: a crashed replica can be placed again at once."""
    from deployments.options import SYNTH_CPUS, fitted

    sized = fitted(cpus)
    total = sum(o["ray_actor_options"]["num_cpus"] * o["autoscaling_config"]["max_replicas"]
                for o in sized.values())
    assert total <= cpus + 1e-9
    if cpus >= 2:
        assert cpus - total >= SYNTH_CPUS - 1e-9
        assert sized["Synthesizer"]["autoscaling_config"]["max_replicas"] >= 2


def test_config_is_cluster_sized(config):
    """The file keeps the cluster's numbers: two serving replicas at least, more than a 2-core box."""
    from deployments.options import fitted

    small = fitted(2)
    for entry in config["applications"][0]["deployments"]:
        if entry["name"] in ("RateLimiter", "VoiceMatcher"):
            continue  # the limiter: one replica by design (global state); fits: sized by matching_num_cpus
        scaling = entry["autoscaling_config"]
        name = "Synthesizer" if entry["name"].startswith("Synthesizer-") else entry["name"]
        assert scaling["max_replicas"] >= small[name]["autoscaling_config"]["max_replicas"]
        if entry["name"] != "SpeakerEmbeddingCache":
            assert scaling["min_replicas"] >= 2, entry["name"]


def test_local_config_is_cpu_only():
    for synth in load_serve_config()["applications"][0]["deployments"]:
        if synth["name"].startswith("Synthesizer-"):
            assert synth["ray_actor_options"].get("num_gpus", 0) == 0


# --------------------------------------------------------------------------- KubeRay


def test_rayservice_manifest_shape():
    service = load_rayservice()
    assert service["apiVersion"] == "ray.io/v1"
    cluster = service["spec"]["rayClusterConfig"]
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert {"cpu-group", "gpu-group"} <= set(groups)
    gpu_container = groups["gpu-group"]["template"]["spec"]["containers"][0]
    assert gpu_container["resources"]["limits"]["nvidia.com/gpu"] == 1

    containers = [cluster["headGroupSpec"]["template"]["spec"]["containers"][0]]
    containers += [g["template"]["spec"]["containers"][0] for g in groups.values()]
    for container in containers:
        env = {e["name"]: e for e in container["env"]}
        assert env["VOXSERVE_STORE"]["value"].startswith("s3://")
        assert "VOXSERVE_CDN_BASE_URL" in env and "AWS_ENDPOINT_URL_S3" in env
        for secret in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert "secretKeyRef" in env[secret]["valueFrom"], f"{secret} must come from a Secret"


def test_rayservice_mirrors_local_config():
    local = load_serve_config()["applications"][0]
    k8s = rayservice_serve_config()["applications"][0]
    for key in ("name", "route_prefix", "import_path"):
        assert k8s[key] == local[key]
    assert [d["name"] for d in k8s["deployments"]] == [d["name"] for d in local["deployments"]]
    # Kokoro on GPUs there: the group it needs must exist (checked above) and be asked for;
    # Piper VITS stays on CPU workers.
    synth = next(d for d in k8s["deployments"] if d["name"] == "Synthesizer-kokoro")
    assert synth["ray_actor_options"]["num_gpus"] > 0
    assert k8s["args"].get("synthesizer_num_gpus") == synth["ray_actor_options"]["num_gpus"]
    assert k8s["args"].get("gpu_families", ["kokoro"]) == ["kokoro"]
    piper = next(d for d in k8s["deployments"] if d["name"] == "Synthesizer-piper")
    assert piper["ray_actor_options"].get("num_gpus", 0) == 0


# --------------------------------------------------------------------------- S3


def test_lifecycle_rules():
    rules = json.loads(LIFECYCLE.read_text())["Rules"]
    assert all(r["Status"] == "Enabled" for r in rules)
    assert len({r["ID"] for r in rules}) == len(rules)

    expire = [r for r in rules if "Expiration" in r]
    assert len(expire) == 1
    assert expire[0]["Filter"]["Prefix"] == "tts/"
    assert expire[0]["Expiration"]["Days"] == 30

    abort = [r for r in rules if "AbortIncompleteMultipartUpload" in r]
    assert len(abort) == 1
    assert abort[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1

    # voices/ is kept forever: no rule that deletes objects may match it.
    for rule in expire:
        prefix = rule.get("Filter", {}).get("Prefix", "")
        assert not "voices/".startswith(prefix), rule["ID"]


def test_cdn_bucket_policy_is_read_only_on_audio():
    policy = json.loads(CDN_POLICY.read_text())
    assert policy["Version"] == "2012-10-17"
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert actions == ["s3:GetObject"]
        assert statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
        assert statement["Resource"].endswith("/tts/*")
        assert statement["Condition"]["StringEquals"]["AWS:SourceArn"].startswith("arn:aws:cloudfront::")
