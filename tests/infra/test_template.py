#!/usr/bin/env python3
"""Template-vs-code check: everything the Lambda code needs is in infra/template.yaml.

Run from anywhere: `python3 tests/infra/test_template.py [TEMPLATE]` (default infra/template.yaml). Offline, stdlib + cfn-lint's YAML
decoder (it understands !Sub, !Ref, !GetAtt, !If). Prints one line per check and a final
`N passed, M failed`; exits 1 when any check fails.

What the code needs is read from the code where it can be:
  - the environment variables each function reads: `env::var("X")`, `env::var_os("X")`,
    helper closures over `env::var(name)` called as `need("X")`, consts passed to env::var,
    and `EnvFilter::…from_default_env` (RUST_LOG), in the function's crate and in the
    workspace libraries it depends on (AWS_* variables come from Lambda itself);
  - whether it talks to Secrets Manager (a dependency on aws-sdk-secretsmanager);
  - the key names the S3 triggers rely on (manifest.json, the chunk-report suffix), the tag
    that the purge lifecycle rule keys on and the log line behind the RunsWithFailures metric;
  - the run-end notification: RUN_TOPIC_ARN names the run topic in exactly the functions that
    end runs (split, poll), only they may publish to it, it is encrypted, and it is an output.
The S3 calls each function makes (a fixed list agreed with the code's authors) are checked by
evaluating the roles' policy statements against concrete object ARNs.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT / "infra" / "template.yaml"
FUNCTIONS = ("split", "submit", "poll")

# Fake pseudo-parameter values used to evaluate !Sub into comparable strings.
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::StackName": "teststack",
    "AWS::AccountId": "123456789012",
    "AWS::Region": "us-east-1",
    "AWS::URLSuffix": "amazonaws.com",
}

# The contract with the code (see the brief in docs/operator-guide.md, "How it fits together").
REPORT_SUFFIX = ".report.json"  # runs/<id>/reports/<seq>.report.json wakes submit
PURGE_TAG = ("holds-password-hashes", "run-final")  # set by poll on chunks + failed-users.json
IN_FLIGHT_TAG = ("holds-password-hashes", "in-flight")  # written with them (split, poll)
RUN_FINAL_MESSAGE = "run report written"  # poll's log line when a run ends
RUN_FINAL_FIELDS = ("rejected", "failed", "unknown", "conservation_holds")  # its fields the metric reads
# The run-end notification: the functions that end runs publish to the run topic named by this
# variable (aws_shell::notify::RUN_TOPIC_ENV). Part of the contract even before an entry point
# reads it: the template must hand it to exactly these functions.
RUN_TOPIC_ENV = "RUN_TOPIC_ARN"
PUBLISHERS = ("split", "poll")

# Variables the Lambda runtime sets; never expected in the template.
RUNTIME_VARS = {"_HANDLER", "_X_AMZN_TRACE_ID", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "TZ", "HOME", "PATH"}

RESULTS: list[tuple[bool, str, str]] = []


def check(name: str, ok: bool, detail: str = "") -> bool:
    RESULTS.append((bool(ok), name, detail))
    print(("PASS " if ok else "FAIL ") + name + ("" if ok or not detail else f": {detail}"))
    return bool(ok)


# ----------------------------------------------------------------------------- template model


def load_template() -> dict:
    try:
        from cfnlint.decode import decode
    except ImportError:
        print("FAIL cfn-lint is not installed (python3 -m pip install cfn-lint)")
        print("0 passed, 1 failed")
        sys.exit(1)
    template, matches = decode(str(TEMPLATE))
    if matches or template is None:
        print(f"FAIL {TEMPLATE} does not parse: {matches}")
        print("0 passed, 1 failed")
        sys.exit(1)
    return template


class Template:
    def __init__(self, raw: dict):
        self.raw = raw
        self.resources: dict = raw.get("Resources", {})
        self.params: dict = raw.get("Parameters", {})
        self.globals: dict = raw.get("Globals", {}).get("Function", {}) or {}

    def of_type(self, typ: str) -> dict:
        return {k: v for k, v in self.resources.items() if v.get("Type") == typ}

    def param_default(self, name: str):
        return self.params.get(name, {}).get("Default")

    def resolve(self, v):
        """Evaluate intrinsics into plain strings: parameters take their defaults, resources
        become <Ref:Id> / <Id.Attr>, pseudo parameters the fake values above."""
        if isinstance(v, dict) and len(v) == 1:
            (k, a), = v.items()
            if k == "Ref":
                if a in PSEUDO:
                    return PSEUDO[a]
                if a in self.params:
                    return str(self.param_default(a))
                return f"<Ref:{a}>"
            if k == "Fn::GetAtt":
                parts = a.split(".", 1) if isinstance(a, str) else list(a)
                return f"<{parts[0]}.{parts[1]}>"
            if k == "Fn::Sub":
                text, extra = (a, {}) if isinstance(a, str) else (a[0], a[1])

                def sub(m):
                    name = m.group(1)
                    if name in extra:
                        return str(self.resolve(extra[name]))
                    if "." in name and name.split(".", 1)[0] in self.resources:
                        return f"<{name}>"
                    return str(self.resolve({"Ref": name}))

                return re.sub(r"\$\{([^}!]+)\}", sub, text)
            if k == "Fn::Join":
                return a[0].join(str(self.resolve(x)) for x in a[1])
            if k == "Fn::If":
                return self.resolve(a[1])  # the "true" branch; enough for these checks
        if isinstance(v, list):
            return [self.resolve(x) for x in v]
        return v

    def fn_prop(self, fn: dict, key: str):
        props = fn.get("Properties", {})
        return props[key] if key in props else self.globals.get(key)


def statements(tpl: Template, fn: dict) -> list[dict]:
    out = []
    for p in tpl.fn_prop(fn, "Policies") or []:
        if isinstance(p, dict) and "Statement" in p:
            st = p["Statement"]
            out.extend(st if isinstance(st, list) else [st])
    return out


def as_list(x):
    return x if isinstance(x, list) else [x]


def allows(tpl: Template, fn: dict, action: str, arn: str) -> bool:
    allowed = False
    for st in statements(tpl, fn):
        acts = [str(a).lower() for a in as_list(st.get("Action", []))]
        if not any(fnmatch.fnmatchcase(action.lower(), a) for a in acts):
            continue
        res = [str(tpl.resolve(r)) for r in as_list(st.get("Resource", []))]
        if not any(fnmatch.fnmatchcase(arn, r) for r in res):
            continue
        if st.get("Effect") == "Deny":
            return False
        allowed = True
    return allowed


# ----------------------------------------------------------------------------- code model


def crate_dir(name: str) -> Path:
    return ROOT / "functions" / name


def crate_binaries(cargo_toml: Path) -> set[str]:
    text = cargo_toml.read_text()
    bins = set(re.findall(r'\[\[bin\]\][^\[]*?name\s*=\s*"([^"]+)"', text, re.S))
    pkg = re.search(r'\[package\][^\[]*?name\s*=\s*"([^"]+)"', text, re.S)
    if pkg and (cargo_toml.parent / "src" / "main.rs").exists():
        bins.add(pkg.group(1))
    return bins


def workspace_libs_of(cargo_toml: Path) -> list[Path]:
    """Workspace path dependencies of a crate (`x.workspace = true` resolved through the root)."""
    root_text = (ROOT / "Cargo.toml").read_text()
    paths = dict(re.findall(r'^([A-Za-z0-9_-]+)\s*=\s*\{[^}]*path\s*=\s*"([^"]+)"', root_text, re.M))
    deps_section = cargo_toml.read_text().split("[dependencies]", 1)[-1].split("\n[", 1)[0]
    out = []
    for dep in re.findall(r"^([A-Za-z0-9_-]+)(?:\.workspace\s*=\s*true|\s*=)", deps_section, re.M):
        if dep in paths:
            out.append(ROOT / paths[dep])
    return out


def rust_sources(crate: Path) -> list[Path]:
    return sorted((crate / "src").rglob("*.rs")) if (crate / "src").is_dir() else []


def env_vars_read(files: list[Path]) -> dict[str, str]:
    """Variable name -> the file that reads it."""
    found: dict[str, str] = {}
    for f in files:
        text = f.read_text()
        consts = dict(re.findall(r'const\s+([A-Z0-9_]+)\s*:\s*&(?:\'static\s+)?str\s*=\s*"([^"]+)"', text))
        rel = str(f.relative_to(ROOT))
        for m in re.finditer(r'env::var(?:_os)?\(\s*(?:"([A-Za-z0-9_]+)"|([A-Z][A-Z0-9_]*)\s*\))', text):
            name = m.group(1) or consts.get(m.group(2) or "")
            if name:
                found.setdefault(name, rel)
        # let need = |name: &str| std::env::var(name)…; need("BUCKET") (or need("BUCKET", default))
        for closure in re.findall(r"let\s+(\w+)\s*=\s*(?:move\s*)?\|\s*(\w+)\s*:[^|]*\|\s*\{?\s*(?:std::)?env::var(?:_os)?\(\s*\2\s*\)", text):
            for name in re.findall(rf'\b{closure[0]}\(\s*"([A-Za-z0-9_]+)"\s*[,)]', text):
                found.setdefault(name, rel)
        if re.search(r"EnvFilter::(?:try_)?from_default_env", text):
            found.setdefault("RUST_LOG", rel)
    return {k: v for k, v in found.items() if not k.startswith("AWS_") and k not in RUNTIME_VARS}


def all_function_sources() -> str:
    return "\n".join(f.read_text() for f in sorted((ROOT / "functions").rglob("src/**/*.rs")))


# ----------------------------------------------------------------------------- checks


def main() -> int:
    tpl = Template(load_template())
    fns = tpl.of_type("AWS::Serverless::Function")
    by_binary = {}
    for lid, fn in fns.items():
        binary = fn.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        if binary:
            by_binary[binary] = (lid, fn)

    buckets = tpl.of_type("AWS::S3::Bucket")
    check("template: one S3 bucket", len(buckets) == 1, f"found {list(buckets)}")
    bucket_id, bucket = next(iter(buckets.items())) if buckets else (None, {})
    bprops = bucket.get("Properties", {})
    bucket_name = str(tpl.resolve(bprops.get("BucketName", "<unnamed>")))
    bucket_arn = f"arn:aws:s3:::{bucket_name}"
    inbox = str(tpl.param_default("InboxPrefix") or "inbox/")

    secrets = tpl.of_type("AWS::SecretsManager::Secret")
    secret_id = next(iter(secrets), None)
    keys = tpl.of_type("AWS::KMS::Key")
    key_id = next(iter(keys), None)
    key_arn = f"<{key_id}.Arn>"
    queues = tpl.of_type("AWS::SQS::Queue")

    sources = all_function_sources()

    # The run topic: the SNS topic the publishers' RUN_TOPIC_ARN names.
    topics = tpl.of_type("AWS::SNS::Topic")
    run_topic_refs = set()
    for fn in fns.values():
        v = ((tpl.fn_prop(fn, "Environment") or {}).get("Variables", {}) or {}).get(RUN_TOPIC_ENV)
        if isinstance(v, dict) and "Ref" in v:
            run_topic_refs.add(v["Ref"])
    check(f"run topic: the functions' {RUN_TOPIC_ENV} all name one SNS topic of the template",
          len(run_topic_refs) == 1 and next(iter(run_topic_refs)) in topics, str(run_topic_refs))
    run_topic_id = next(iter(run_topic_refs), None)
    run_topic_arn = f"<Ref:{run_topic_id}>"
    check(f"run topic: the code names {RUN_TOPIC_ENV} (aws-shell's RUN_TOPIC_ENV)",
          f'"{RUN_TOPIC_ENV}"' in sources, "no such string in functions/*/src")

    # What each function's role must allow (S3 calls agreed with the code's authors).
    obj = lambda key: f"{bucket_arn}/{key}"  # noqa: E731
    need_s3 = {
        "split": [
            ("s3:GetObject", obj(f"{inbox}con_123/users.json")),
            # The version an event names is read by its versionId.
            ("s3:GetObjectVersion", obj(f"{inbox}con_123/users.json")),
            # The run's split claim, and each attempt's own folder.
            *[(a, obj("runs/r-1/split-claim.json")) for a in ("s3:GetObject", "s3:PutObject")],
            *[(a, obj("runs/r-1/attempts/a1/chunks/000001.json")) for a in ("s3:PutObject", "s3:DeleteObject")],
            # Split lists each committed run for submit and poll.
            *[(a, obj("active-runs/r-1.json")) for a in ("s3:GetObject", "s3:PutObject")],
            *[(a, obj("runs/r-1/chunks/000001.json")) for a in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")],
            # Chunks are written with their in-flight tag (x-amz-tagging needs this too).
            ("s3:PutObjectTagging", obj("runs/r-1/attempts/a1/chunks/000001.json")),
            ("s3:PutObject", obj("runs/r-1/manifest.json")),
            # rejects.ndjson is a multipart upload, abandoned when the run fails.
            ("s3:AbortMultipartUpload", obj("runs/r-1/rejects.ndjson")),
            ("s3:ListBucket", bucket_arn),
        ],
        "submit": [
            *[(a, obj(k)) for k in ("runs/r-1/jobs/000001.json", "active-runs/r-1.json", "slots/0.json")
              for a in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")],
            ("s3:ListBucket", bucket_arn),
        ],
        "poll": [
            *[(a, obj(k)) for k in ("runs/r-1/reports/000001.report.json", "runs/r-1/report.json",
                                    "active-runs/r-1.json", "slots/0.json", "reconcile-runs/r-1.json",
                                    "runs/r-1/reconciliation.json")
              for a in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")],
            ("s3:PutObjectTagging", obj("runs/r-1/chunks/000001.json")),
            ("s3:PutObjectTagging", obj("runs/r-1/failed-users.json")),
            # Finalisation's outputs are multipart uploads: one found aborted (S3 aborts uploads
            # left a day) is told by its parts' listing, and the others are aborted.
            *[(a, obj(k)) for k in ("runs/r-1/report.csv", "runs/r-1/failed-users.json")
              for a in ("s3:ListMultipartUploadParts", "s3:AbortMultipartUpload")],
            ("s3:ListBucket", bucket_arn),
        ],
    }
    # …and must not (least privilege).
    deny_s3 = {
        "split": [("s3:PutObject", obj(f"{inbox}con_123/x.json")), ("s3:PutObject", obj("slots/0.json")),
                  ("s3:DeleteObject", obj("active-runs/r-1.json")), ("s3:DeleteObject", obj(f"{inbox}con_123/users.json"))],
        "submit": [("s3:GetObject", obj(f"{inbox}con_123/users.json")), ("s3:PutObject", obj(f"{inbox}x"))],
        "poll": [("s3:GetObject", obj(f"{inbox}con_123/users.json")), ("s3:PutObject", obj(f"{inbox}x"))],
    }

    s3_events_all = []  # (function, prefix, suffix)
    for name in FUNCTIONS:
        crate = crate_dir(name)
        cargo = crate / "Cargo.toml"
        have_crate = check(f"{name}: crate functions/{name}/Cargo.toml exists", cargo.exists(),
                           f"functions/{name} is missing (not written yet?)")
        if have_crate:
            bins = crate_binaries(cargo)
            check(f"{name}: crate builds a binary named {name}", name in bins, f"binaries: {sorted(bins)}")

        lid, fn = by_binary.get(name, (None, None))
        if not check(f"{name}: a function with BuildProperties.Binary = {name}", fn is not None,
                     f"functions in template: {list(fns)}"):
            continue
        props = fn.get("Properties", {})
        meta = fn.get("Metadata", {})
        check(f"{name}: built with rust-cargolambda", meta.get("BuildMethod") == "rust-cargolambda", str(meta))
        check(f"{name}: runtime provided.al2023, handler bootstrap",
              tpl.fn_prop(fn, "Runtime") == "provided.al2023" and tpl.fn_prop(fn, "Handler") == "bootstrap")
        code_uri = (TEMPLATE.parent / str(tpl.fn_prop(fn, "CodeUri") or ".")).resolve()
        check(f"{name}: CodeUri is the workspace root",
              (code_uri / "Cargo.toml").exists() and "[workspace]" in (code_uri / "Cargo.toml").read_text(),
              str(code_uri))
        timeout, memory = tpl.fn_prop(fn, "Timeout"), tpl.fn_prop(fn, "MemorySize")
        check(f"{name}: Timeout and MemorySize are set", timeout is not None and memory is not None)
        check(f"{name}: ReservedConcurrentExecutions is set", tpl.fn_prop(fn, "ReservedConcurrentExecutions") is not None)

        # Environment: every variable the code reads is set, and nothing the code never reads.
        env = (tpl.fn_prop(fn, "Environment") or {}).get("Variables", {}) or {}
        if have_crate:
            files = rust_sources(crate)
            for lib in workspace_libs_of(cargo):
                files += rust_sources(lib)
            read = env_vars_read(files)
            if name in PUBLISHERS:
                read.setdefault(RUN_TOPIC_ENV, "the run-end contract (RUN_TOPIC_ENV)")
            check(f"{name}: code reads environment variables (scan found some)", bool(read),
                  "no env::var reads found: the scanner needs updating")
            for var, where in sorted(read.items()):
                check(f"{name}: env {var} (read in {where}) is set", var in env, f"missing from {lid}.Environment")
            extra = sorted(set(env) - set(read))
            check(f"{name}: no env var the code never reads", not extra, f"unused: {extra}")
        else:
            check(f"{name}: environment variables match the code", False, "crate missing: cannot scan")

        # Values that must agree with the rest of the template.
        if "BUCKET" in env:
            check(f"{name}: BUCKET is the bucket's name", str(tpl.resolve(env["BUCKET"])) == bucket_name,
                  f"{tpl.resolve(env['BUCKET'])} != {bucket_name}")
        if "AUTH0_SECRET_ID" in env:
            check(f"{name}: AUTH0_SECRET_ID names the template's secret", env["AUTH0_SECRET_ID"] == {"Ref": secret_id},
                  str(env["AUTH0_SECRET_ID"]))
        if "JOB_SLOTS" in env:
            p = tpl.params.get(env["JOB_SLOTS"].get("Ref", ""), {}) if isinstance(env["JOB_SLOTS"], dict) else {}
            check(f"{name}: JOB_SLOTS is a parameter limited to 1..16 (the code's range)",
                  p.get("MinValue", 0) >= 1 and p.get("MaxValue", 99) <= 16, str(p))
        if "SCRATCH_DIR" in env:
            check(f"{name}: SCRATCH_DIR is under /tmp (the only writable place)", str(env["SCRATCH_DIR"]).startswith("/tmp"))
        if "MAX_CHUNK_BYTES" in env:
            p = tpl.params.get(env["MAX_CHUNK_BYTES"].get("Ref", ""), {}) if isinstance(env["MAX_CHUNK_BYTES"], dict) else {}
            check(f"{name}: MAX_CHUNK_BYTES is a parameter within 1024..511000",
                  p.get("MinValue", 0) >= 1024 and p.get("MaxValue", 10**9) <= 511000, str(p))

        # The run topic: publishers may publish to it, nobody else.
        if run_topic_id:
            if name in PUBLISHERS:
                check(f"{name}: {RUN_TOPIC_ENV} is the run topic",
                      env.get(RUN_TOPIC_ENV) == {"Ref": run_topic_id}, str(env.get(RUN_TOPIC_ENV)))
                check(f"{name}: role allows sns:Publish on the run topic",
                      allows(tpl, fn, "sns:Publish", run_topic_arn))
            else:
                check(f"{name}: role cannot publish to the run topic (it ends no run)",
                      not allows(tpl, fn, "sns:Publish", run_topic_arn))
            for other in topics:
                if other != run_topic_id:
                    check(f"{name}: role cannot publish to {other}",
                          not allows(tpl, fn, "sns:Publish", f"<Ref:{other}>"))

        # Role: least privilege.
        for action, arn in need_s3[name]:
            check(f"{name}: role allows {action} on {arn.replace(bucket_arn, 's3://BUCKET')}", allows(tpl, fn, action, arn))
        for action, arn in deny_s3[name]:
            check(f"{name}: role does not allow {action} on {arn.replace(bucket_arn, 's3://BUCKET')}",
                  not allows(tpl, fn, action, arn))
        broad = [st for st in statements(tpl, fn) if st.get("Effect") == "Allow" and (
            any(a in ("*", "s3:*", "kms:*", "secretsmanager:*") for a in as_list(st.get("Action", [])))
            or "*" in as_list(st.get("Resource", [])))]
        check(f"{name}: no wildcard actions or Resource '*'", not broad, str(broad))
        for action in ("kms:Decrypt", "kms:GenerateDataKey"):
            check(f"{name}: role allows {action} on the bucket's KMS key", allows(tpl, fn, action, key_arn))
        uses_secrets = have_crate and "aws-sdk-secretsmanager" in cargo.read_text()
        secret_arn = f"<Ref:{secret_id}>"
        if uses_secrets and name == "split":
            # Split reads the canaries' secret only, never the Auth0 credentials.
            canary_ids = [r for r, v in tpl.of_type("AWS::SecretsManager::Secret").items() if r != secret_id]
            check("split: role allows secretsmanager:GetSecretValue on the canary secret",
                  any(allows(tpl, fn, "secretsmanager:GetSecretValue", f"<Ref:{c}>") for c in canary_ids),
                  str(canary_ids))
            check("split: role cannot read the Auth0 secret",
                  not allows(tpl, fn, "secretsmanager:GetSecretValue", secret_arn))
            env = (props.get("Environment", {}) or {}).get("Variables", {})
            check("split: CANARY_SECRET_ID names the canary secret",
                  env.get("CANARY_SECRET_ID") in [{"Ref": c} for c in canary_ids])
        elif uses_secrets:
            check(f"{name}: role allows secretsmanager:GetSecretValue on the secret",
                  allows(tpl, fn, "secretsmanager:GetSecretValue", secret_arn))
        elif have_crate:
            check(f"{name}: role cannot read the secret (the code does not use Secrets Manager)",
                  not allows(tpl, fn, "secretsmanager:GetSecretValue", secret_arn))
        elif name in ("submit", "poll"):
            check(f"{name}: role allows secretsmanager:GetSecretValue on the secret",
                  allows(tpl, fn, "secretsmanager:GetSecretValue", secret_arn))

        # Triggers.
        events = props.get("Events", {}) or {}
        s3_events, schedules = [], []
        for ev in events.values():
            ep = ev.get("Properties", {})
            if ev.get("Type") == "S3":
                rules = ep.get("Filter", {}).get("S3Key", {}).get("Rules", [])
                f = {r["Name"].lower(): str(tpl.resolve(r["Value"])) for r in rules}
                on_bucket = ep.get("Bucket") == {"Ref": bucket_id}
                s3_events.append((f.get("prefix", ""), f.get("suffix", ""), on_bucket))
                s3_events_all.append((name, f.get("prefix", ""), f.get("suffix", "")))
            elif ev.get("Type") in ("Schedule", "ScheduleV2"):
                schedules.append(ep)
        if name == "split":
            check("split: triggered by ObjectCreated under the inbox prefix",
                  any(p == inbox and b for p, s, b in s3_events), str(s3_events))
            check("split: INBOX_PREFIX equals the trigger's prefix", str(tpl.resolve(env.get("INBOX_PREFIX"))) == inbox)
        if name == "submit":
            manifest = re.search(r'const\s+MANIFEST\s*:\s*&str\s*=\s*"([^"]+)"', sources)
            check("submit: code names the manifest (layout::MANIFEST)", manifest is not None)
            if manifest:
                check(f"submit: triggered by runs/…/{manifest.group(1)}",
                      any(p == "runs/" and s == manifest.group(1) and b for p, s, b in s3_events), str(s3_events))
            check(f"submit: triggered by chunk reports runs/…/*{REPORT_SUFFIX}",
                  any(p == "runs/" and s == REPORT_SUFFIX and b for p, s, b in s3_events), str(s3_events))
        if name in ("submit", "poll"):
            check(f"{name}: has an EventBridge schedule", bool(schedules))
        if name == "poll":
            poll_src = sources  # the crate and the workspace libraries it uses (orchestrator)
            check(f"poll: code names chunk reports *{REPORT_SUFFIX} (submit's trigger)", REPORT_SUFFIX in sources,
                  f"no '{REPORT_SUFFIX}' in functions/*/src")
            check(f"poll: code tags final runs' chunks {PURGE_TAG[0]}={PURGE_TAG[1]} (purge rule)",
                  PURGE_TAG[0] in poll_src + sources and PURGE_TAG[1] in poll_src + sources,
                  "the lifecycle rule keys on this tag")
            missing = [f for f in RUN_FINAL_FIELDS if not re.search(rf"\b{f}\s*=", poll_src)]
            check(f"poll: code logs '{RUN_FINAL_MESSAGE}' with {', '.join(RUN_FINAL_FIELDS)} (RunsWithFailures metric)",
                  f'"{RUN_FINAL_MESSAGE}"' in poll_src and not missing,
                  f"poll's sources lack the message or fields {missing}")

        # Async failures go somewhere.
        dest = ((tpl.fn_prop(fn, "EventInvokeConfig") or {}).get("DestinationConfig", {}) or {}).get("OnFailure", {})
        dlq = tpl.fn_prop(fn, "DeadLetterQueue")
        dest_ok = (dest.get("Destination", {}) or {}).get("Fn::GetAtt", [None])[0] in queues if isinstance(dest.get("Destination"), dict) else False
        dlq_ok = isinstance(dlq, dict) and dlq.get("Type") in ("SQS", "SNS")
        check(f"{name}: failed async invocations go to a dead-letter destination", dest_ok or dlq_ok, str(dest or dlq))

    # S3 notification rules must not overlap (S3 refuses the configuration otherwise).
    overlaps = [(a, b) for i, a in enumerate(s3_events_all) for b in s3_events_all[i + 1:]
                if (a[1].startswith(b[1]) or b[1].startswith(a[1])) and (a[2].endswith(b[2]) or b[2].endswith(a[2]))]
    check("bucket: S3 notification rules do not overlap", not overlaps, str(overlaps))
    # …and no function's writes re-trigger split.
    check("bucket: inbox prefix is outside the pipeline's prefixes",
          not any(inbox.startswith(p) or p.startswith(inbox) for p in ("runs/", "active-runs/", "slots/")))

    # The bucket.
    pab = bprops.get("PublicAccessBlockConfiguration", {})
    check("bucket: public access blocked (all four settings)",
          all(pab.get(k) is True for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")))
    sse = [r.get("ServerSideEncryptionByDefault", {}) for r in
           bprops.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])]
    check("bucket: default encryption with the template's KMS key",
          any(s.get("SSEAlgorithm") == "aws:kms" and tpl.resolve(s.get("KMSMasterKeyID")) in (key_arn, f"<Ref:{key_id}>")
              for s in sse), str(sse))
    check("bucket: versioning enabled", bprops.get("VersioningConfiguration", {}).get("Status") == "Enabled")
    check("bucket: KMS key rotation enabled", bool(keys) and keys[key_id].get("Properties", {}).get("EnableKeyRotation") is True)
    policies = [p for p in tpl.of_type("AWS::S3::BucketPolicy").values()
                if p.get("Properties", {}).get("Bucket") == {"Ref": bucket_id}]
    tls = False
    for p in policies:
        for st in p["Properties"]["PolicyDocument"].get("Statement", []):
            cond = st.get("Condition", {}).get("Bool", {})
            res = [str(tpl.resolve(r)) for r in as_list(st.get("Resource", []))]
            if st.get("Effect") == "Deny" and str(cond.get("aws:SecureTransport")).lower() == "false" \
                    and st.get("Principal") == "*" and any(r.endswith("/*") for r in res) and len(res) >= 2:
                tls = True
    check("bucket: policy refuses non-TLS requests (bucket and objects)", tls)
    rules = bprops.get("LifecycleConfiguration", {}).get("Rules", [])
    purge = [r for r in rules if r.get("Status") == "Enabled" and r.get("ExpirationInDays") is not None
             and str(tpl.resolve(r.get("Prefix", ""))).startswith("runs")
             and {"Key": PURGE_TAG[0], "Value": PURGE_TAG[1]} in [dict(t) for t in r.get("TagFilters", [])]]
    check(f"bucket: lifecycle expires chunks + failed-users ({PURGE_TAG[0]}={PURGE_TAG[1]} under runs/)", bool(purge), str(rules))
    check("bucket: that rule also removes the old versions",
          any(r.get("NoncurrentVersionExpiration") for r in purge))
    by_age = [r for r in rules if r.get("Status") == "Enabled" and r.get("ExpirationInDays") is not None
              and str(tpl.resolve(r.get("Prefix", ""))).startswith("runs")
              and {"Key": IN_FLIGHT_TAG[0], "Value": IN_FLIGHT_TAG[1]} in [dict(t) for t in r.get("TagFilters", [])]]
    check(f"bucket: lifecycle expires hash holders by age, run final or not ({IN_FLIGHT_TAG[0]}={IN_FLIGHT_TAG[1]})",
          bool(by_age) and any(r.get("NoncurrentVersionExpiration") for r in by_age), str(rules))
    check(f"code: objects holding hashes are written tagged {IN_FLIGHT_TAG[0]}={IN_FLIGHT_TAG[1]}",
          f'"{IN_FLIGHT_TAG[1]}"' in sources and "set_tagging" in sources, "the age rule keys on this tag")
    check("bucket: no lifecycle rule expires all of runs/ (reports stay)",
          not any(r.get("ExpirationInDays") is not None and not r.get("TagFilters")
                  and str(tpl.resolve(r.get("Prefix", ""))) in ("", "runs/") for r in rules))

    # The secret.
    check("secret: created by the template", secret_id is not None)
    if secret_id:
        sprops = secrets[secret_id]["Properties"]
        s = sprops.get("SecretString")
        shapes = []
        if isinstance(s, dict) and "Fn::If" in s:
            shapes = [s["Fn::If"][1], s["Fn::If"][2]]
        elif s is not None:
            shapes = [s]
        fields = set(re.findall(r'field\("([a-z_]+)"\)', sources))
        for shape in shapes:
            text = str(tpl.resolve(shape))
            try:
                keys_in = set(json.loads(text))
            except ValueError:
                keys_in = set()
            check(f"secret: initial value is JSON with the code's fields {sorted(keys_in)}",
                  keys_in and keys_in <= fields and {"domain", "client_id", "client_secret"} <= keys_in,
                  f"{text!r}; code reads {sorted(fields)}")
        check("secret: encrypted with the template's KMS key", sprops.get("KmsKeyId") == {"Ref": key_id})

    # Alarms.
    alarms = tpl.of_type("AWS::CloudWatch::Alarm").values()

    def alarm_on(metric: str, dim_value) -> bool:
        return any(a["Properties"].get("MetricName") == metric and
                   any(d.get("Value") == dim_value for d in a["Properties"].get("Dimensions", []))
                   for a in alarms)

    for name in FUNCTIONS:
        lid = by_binary.get(name, (None,))[0]
        if lid:
            check(f"alarms: {name} errors", alarm_on("Errors", {"Ref": lid}))
            check(f"alarms: {name} throttles", alarm_on("Throttles", {"Ref": lid}))
    for qid in queues:
        check(f"alarms: messages in dead-letter queue {qid}",
              alarm_on("ApproximateNumberOfMessagesVisible", {"Fn::GetAtt": [qid, "QueueName"]}))
    filters = tpl.of_type("AWS::Logs::MetricFilter")
    metric_names = {t.get("MetricName") for f in filters.values() for t in f["Properties"].get("MetricTransformations", [])
                    if RUN_FINAL_MESSAGE in f["Properties"].get("FilterPattern", "")}
    check("alarms: runs that end with failures (metric filter on poll's log)",
          any(a["Properties"].get("MetricName") in metric_names for a in alarms), str(metric_names))
    check("alarms: every alarm notifies someone", all(a["Properties"].get("AlarmActions") for a in alarms))

    # The run topic: encrypted, an optional e-mail subscription, named in the outputs.
    if run_topic_id:
        tprops = topics[run_topic_id].get("Properties", {})
        check("run topic: encrypted with the template's KMS key", tprops.get("KmsMasterKeyId") == {"Ref": key_id},
              str(tprops.get("KmsMasterKeyId")))
        subs = [r for r in tpl.of_type("AWS::SNS::Subscription").values()
                if r.get("Properties", {}).get("TopicArn") == {"Ref": run_topic_id}]
        email_subs = [r for r in subs if r["Properties"].get("Protocol") == "email"]
        check("run topic: an e-mail subscription from an optional parameter",
              len(email_subs) == 1 and "Condition" in email_subs[0]
              and isinstance(email_subs[0]["Properties"].get("Endpoint"), dict)
              and tpl.param_default(email_subs[0]["Properties"]["Endpoint"].get("Ref")) == "",
              str(email_subs))
        outs = tpl.raw.get("Outputs", {})
        check("outputs: RunTopicArn names the run topic",
              outs.get("RunTopicArn", {}).get("Value") == {"Ref": run_topic_id}, str(outs.get("RunTopicArn")))
        check("outputs: InboxPrefix (the CLI's drop reads it)",
              outs.get("InboxPrefix", {}).get("Value") == {"Ref": "InboxPrefix"}, str(outs.get("InboxPrefix")))
        check("outputs: MaxChunkBytes (the CLI's plan reads it)",
              outs.get("MaxChunkBytes", {}).get("Value") == {"Ref": "MaxChunkBytes"}, str(outs.get("MaxChunkBytes")))

    # Parameters and outputs.
    for p in ("InboxPrefix", "DefaultConnection", "JobSlots", "SubmitSchedule", "PollSchedule"):
        check(f"parameters: {p}", p in tpl.params)
    outputs = tpl.raw.get("Outputs", {})
    for o in ("BucketName", "Auth0SecretArn", "DropLocation"):
        check(f"outputs: {o}", o in outputs)

    passed = sum(1 for ok, _, _ in RESULTS if ok)
    failed = len(RESULTS) - passed
    if failed:
        print("\nFailed:")
        for ok, name, detail in RESULTS:
            if not ok:
                print(f"  {name}" + (f" — {detail}" if detail else ""))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
