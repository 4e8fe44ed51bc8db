"""cluster.yaml: valid for Ray's own launcher, closed to the internet, same pins as the project."""

import copy
import ipaddress
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
RAY_PORTS = {"dashboard": 8265, "gcs": 6379, "client": 10001}


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def world_open_ports(rule: dict) -> range | None:
    """The port range `rule` opens to 0.0.0.0/0 or ::/0 (None if it admits no such source)."""
    cidrs = [r["CidrIp"] for r in rule.get("IpRanges", [])] + [r["CidrIpv6"] for r in rule.get("Ipv6Ranges", [])]
    if not any(ipaddress.ip_network(c, strict=False).prefixlen == 0 for c in cidrs):
        return None
    if str(rule.get("IpProtocol")) == "-1" or rule.get("FromPort", -1) == -1:
        return range(0, 65536)
    return range(rule["FromPort"], rule["ToPort"] + 1)


def ingress_rules(cluster: dict) -> list[dict]:
    return cluster["provider"].get("security_group", {}).get("IpPermissions", [])


def installed_requirements(commands: list[str]) -> dict[str, Requirement]:
    """Package requirements named after `pip install` in the setup commands, by canonical name."""
    found = {}
    for command in commands:
        tokens = shlex.split(command)
        if "install" not in tokens:
            continue
        for token in tokens[tokens.index("install") + 1:]:
            if not token.startswith(("-", "~", "/")):
                req = Requirement(token)
                found[canonicalize_name(req.name)] = req
    return found


def project_requirements() -> dict[str, Requirement]:
    """pyproject.toml's runtime dependencies + `gpu` extra, and torchrec as scripts/setup_venv.sh pins it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + project["optional-dependencies"]["gpu"]
    torchrec = re.search(r"^TORCHREC_VERSION=(\S+)$", (ROOT / "scripts/setup_venv.sh").read_text(), re.M)
    assert torchrec, "scripts/setup_venv.sh no longer sets TORCHREC_VERSION"
    lines.append(f"torchrec=={torchrec.group(1)}")
    return {canonicalize_name(Requirement(line).name): Requirement(line) for line in lines}


def test_validates_against_rays_cluster_schema(cluster):
    validate_config(prepare_config(copy.deepcopy(cluster)))  # what `ray up` runs before launching


def test_schema_check_rejects_a_bad_key(cluster):
    bad = copy.deepcopy(cluster)
    bad["provider"]["security_group"]["Ports"] = [8265]
    with pytest.raises(Exception, match="Ports"):
        validate_config(prepare_config(bad))


@pytest.mark.parametrize("rule,opens", [
    ({"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 9000, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}, True),
    ({"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}, True),
    ({"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}, False),
    ({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}, False),
])
def test_world_open_check_catches_ranges_and_all_protocols(rule, opens):
    ports = world_open_ports(rule)
    assert (ports is not None and 8265 in ports) == opens


def test_no_ray_port_is_open_to_the_internet(cluster):
    for rule in ingress_rules(cluster):
        ports = world_open_ports(rule)
        exposed = sorted(name for name, port in RAY_PORTS.items() if ports is not None and port in ports)
        assert not exposed, f"rule {rule} opens {exposed} to the internet"


def test_outside_access_is_ssh_only_from_a_limited_cidr(cluster):
    rules = ingress_rules(cluster)
    assert rules, "expected the SSH rule in provider.security_group"
    for rule in rules:
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 22, 22)
        assert world_open_ports(rule) is None


def test_dashboard_not_bound_to_all_interfaces(cluster):
    head_start = " ".join(cluster["head_start_ray_commands"])
    assert "--dashboard-host" not in head_start  # Ray's default is 127.0.0.1; reached via SSH tunnel


def test_head_runs_no_training_work(cluster):
    head = cluster["available_node_types"][cluster["head_node_type"]]
    assert head["resources"] == {"CPU": 0, "GPU": 0}
    workers = [t for name, t in cluster["available_node_types"].items() if name != cluster["head_node_type"]]
    assert any(t["max_workers"] > 0 and t["node_config"]["InstanceType"].startswith(("g5", "p4d", "p5"))
               for t in workers)


def test_setup_installs_the_projects_pins_with_cuda_fbgemm(cluster):
    installed = installed_requirements(cluster["setup_commands"])
    assert "fbgemm-gpu-cpu" not in installed, "GPU nodes need the CUDA fbgemm-gpu"
    for name, req in project_requirements().items():
        assert name in installed, f"{name} from the project is not installed on the nodes"
        assert installed[name].specifier == req.specifier, f"{name}: {installed[name]} vs {req}"
        assert req.extras <= installed[name].extras, f"{name}: extras {req.extras} missing"
    for name in ("torch", "ray", "fbgemm-gpu", "torchrec"):
        assert str(installed[name].specifier).startswith("=="), f"{name} must be pinned"
