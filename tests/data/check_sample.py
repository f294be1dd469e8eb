#!/usr/bin/env python3
"""Check generated user files against Auth0's bulk-import rules (independent of the Rust code).

Rules: the published per-user schema (required email, allowed top-level keys, types, enums,
patterns, mfa_factors limits, custom_password_hash shape) plus the prose-only rules from
import-api-facts.md §4.3-4.6 (reserved app_metadata keys, per-algorithm hash encodings and salt,
password_hash pattern, password_hash XOR custom_password_hash) and duplicates in the file
(email case-insensitive, username, user_id).

  python3 tests/data/check_sample.py FILE [--format auto|json|ndjson|auth0-export] [--limit N]
                                        [--labels LABELS.ndjson] [--schema user-import.schema.json]

Reads JSON arrays (one record per line is streamed; anything else falls back to json.load),
NDJSON and Auth0 exports, gzipped or not. Auth0 exports are first converted as in facts §6.1
(strip "auth0|", drop export-only keys). --labels compares the flagged records with the
generator's --labels output; --schema cross-checks the key lists below against the schema file.
Exit status: 0 when every record is valid (or, with --labels, when flagged == labelled).
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from collections import Counter

TOP_LEVEL = {
    "email": str, "email_verified": bool, "phone_number": str, "phone_verified": bool,
    "user_id": str, "username": str, "given_name": str, "family_name": str, "name": str,
    "nickname": str, "picture": str, "blocked": bool, "password_hash": str,
    "custom_password_hash": dict, "app_metadata": dict, "user_metadata": dict, "mfa_factors": list,
}
CPH_KEYS = {"algorithm", "hash", "salt", "password", "keylen", "cost", "blockSize", "parallelization"}
ALGORITHMS = {"argon2", "bcrypt", "hmac", "ldap", "md4", "md5", "sha1", "sha256", "sha512", "pbkdf2", "scrypt"}
ENCODINGS = {"base64", "hex", "utf8"}
DIGESTS = {"md4", "md5", "ripemd160", "sha1", "sha224", "sha256", "sha384", "sha512", "whirlpool"}
PASSWORD_ENCODINGS = {"ascii", "utf8", "utf16le", "ucs2", "latin1", "binary"}
RESERVED_APP_METADATA = {"__tenant", "_id", "blocked", "clientID", "created_at", "email_verified",
                         "email", "globalClientID", "global_client_id", "identities", "lastIP",
                         "lastLogin", "loginsCount", "metadata", "multifactor_last_modified",
                         "multifactor", "updated_at", "user_id"}
EXPORT_ONLY = {"created_at", "updated_at", "last_login", "last_ip", "logins_count", "identities",
               "multifactor", "last_password_reset"}
UTF8_ONLY = {"argon2", "bcrypt", "ldap", "pbkdf2"}
NO_SALT = {"argon2", "pbkdf2", "ldap"}
DIGEST_BYTES = {"md4": 16, "md5": 16, "sha1": 20, "sha256": 32, "sha512": 64}

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
BCRYPT_RE = re.compile(r"^\$2[ab]?\$10+\$[./A-Za-z0-9]{53}$")
TOTP_RE = re.compile(r"^[A-Z2-7]+$")
PHONE_RE = re.compile(r"^\+[0-9]{1,15}$")
HEX_RE = re.compile(r"^[0-9A-Fa-f]*$")
B64_RE = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")


def check_user(u, problems):
    """Append problem names for one user object to `problems`."""
    if not isinstance(u, dict):
        problems.append("not_an_object")
        return
    for k, v in u.items():
        t = TOP_LEVEL.get(k)
        if t is None:
            problems.append("unknown_key:" + k)
        elif not isinstance(v, t) or (t is not bool and isinstance(v, bool)):
            problems.append("wrong_type:" + k)
    email = u.get("email")
    if "email" not in u:
        problems.append("missing_email")
    elif isinstance(email, str) and not EMAIL_RE.match(email):
        problems.append("bad_email")
    ph = u.get("password_hash")
    if isinstance(ph, str) and not BCRYPT_RE.match(ph):
        problems.append("bad_password_hash")
    if "password_hash" in u and "custom_password_hash" in u:
        problems.append("both_hashes")
    if isinstance(u.get("custom_password_hash"), dict):
        check_custom_hash(u["custom_password_hash"], problems)
    am = u.get("app_metadata")
    if isinstance(am, dict):
        for k in am:
            if k in RESERVED_APP_METADATA:
                problems.append("reserved_app_metadata:" + k)
            if "." in k or "$" in k:
                problems.append("bad_metadata_key")
    pn = u.get("phone_number")
    if isinstance(pn, str) and not PHONE_RE.match(pn):
        problems.append("bad_phone_number")
    mfa = u.get("mfa_factors")
    if isinstance(mfa, list):
        if not 1 <= len(mfa) <= 10:
            problems.append("mfa_count")
        for f in mfa:
            check_factor(f, problems)


def check_factor(f, problems):
    if not isinstance(f, dict) or len(f) != 1:
        problems.append("mfa_factor_shape")
        return
    (kind, v), = f.items()
    if kind not in ("totp", "phone", "email") or not isinstance(v, dict):
        problems.append("mfa_factor_shape")
        return
    field = "secret" if kind == "totp" else "value"
    if set(v) != {field} or not isinstance(v[field], str):
        problems.append("mfa_factor_shape")
        return
    pat = {"totp": TOTP_RE, "phone": PHONE_RE, "email": EMAIL_RE}[kind]
    if not pat.match(v[field]):
        problems.append("mfa_%s_pattern" % kind)


def check_custom_hash(c, problems):
    bad = problems.append
    for k in c:
        if k not in CPH_KEYS:
            bad("cph_unknown_key:" + k)
    alg = c.get("algorithm")
    h = c.get("hash")
    if alg not in ALGORITHMS:
        bad("cph_algorithm")
        return
    if not isinstance(h, dict) or not isinstance(h.get("value"), str):
        bad("cph_hash_shape")
        return
    enc, val = h.get("encoding"), h["value"]
    if enc not in ENCODINGS:
        bad("cph_encoding_enum")
    salt = c.get("salt")
    if salt is not None:
        if not isinstance(salt, dict) or not isinstance(salt.get("value"), str) \
                or salt.get("encoding", "utf8") not in ENCODINGS \
                or salt.get("position", "prefix") not in ("prefix", "suffix"):
            bad("cph_salt_shape")
    pw = c.get("password")
    if pw is not None and (not isinstance(pw, dict) or pw.get("encoding", "utf8") not in PASSWORD_ENCODINGS):
        bad("cph_password_encoding")
    # per-algorithm rules (facts §4.6)
    if alg in UTF8_ONLY and enc != "utf8":
        bad("cph_encoding_for_algorithm")
    if alg not in UTF8_ONLY and enc == "utf8":
        bad("cph_encoding_for_algorithm")
    if alg in NO_SALT and salt is not None:
        bad("cph_salt_not_allowed")
    if alg == "bcrypt" and not re.match(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$", val):
        bad("cph_bcrypt_value")
    if alg == "argon2" and not re.match(r"^\$argon2(id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$", val):
        bad("cph_argon2_value")
    if alg == "pbkdf2" and not re.match(r"^\$pbkdf2-[A-Za-z0-9-]+\$(i=\d+(,l=\d+)?\$)?[A-Za-z0-9+/.]+\$[A-Za-z0-9+/.]+$", val):
        bad("cph_pbkdf2_value")
    if alg == "ldap" and (not val.startswith("{") or val.upper().startswith("{CRYPT}")):
        bad("cph_ldap_value")
    if alg == "hmac":
        if h.get("digest") not in DIGESTS:
            bad("cph_hmac_digest")
        key = h.get("key")
        if not isinstance(key, dict) or not isinstance(key.get("value"), str) \
                or key.get("encoding", "utf8") not in ENCODINGS:
            bad("cph_hmac_key")
    elif "digest" in h or "key" in h:
        bad("cph_digest_or_key_not_hmac")
    if alg == "scrypt":
        if not isinstance(c.get("keylen"), int) or c["keylen"] <= 0:
            bad("cph_scrypt_keylen")
        cost = c.get("cost", 16384)
        if not isinstance(cost, int) or cost < 2 or cost & (cost - 1):
            bad("cph_scrypt_cost")
    n = DIGEST_BYTES.get(alg)
    if n and enc == "hex" and (len(val) != 2 * n or not HEX_RE.match(val)):
        bad("cph_digest_length")
    if n and enc == "base64" and (len(val) != 4 * ((n + 2) // 3) or not B64_RE.match(val)):
        bad("cph_digest_length")


def from_export(u):
    """facts §6.1: strip the auth0| prefix and export-only keys."""
    u = {k: v for k, v in u.items() if k not in EXPORT_ONLY}
    uid = u.get("user_id")
    if isinstance(uid, str) and uid.startswith("auth0|"):
        u["user_id"] = uid[len("auth0|"):]
    return u


def records(path, fmt):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    f = gzip.open(path, "rt", encoding="utf-8") if gz else open(path, encoding="utf-8")
    with f:
        first = f.read(1)
        while first and first.isspace():
            first = f.read(1)
        if fmt == "auto":
            fmt = "json" if first == "[" else "ndjson"
        if fmt != "json":
            first_line = first + f.readline()
            if first_line.strip():
                yield json.loads(first_line)
            for line in f:
                if line.strip():
                    yield json.loads(line)
            return
        # JSON array: stream when it is one record per line, else fall back to json.load.
        yielded = 0
        try:
            for line in f:
                s = line.strip()
                if not s or s == "]":
                    continue
                rec = json.loads(s[:-1] if s.endswith(",") else s)
                yielded += 1
                yield rec
        except ValueError:
            if yielded:
                raise
            f.seek(0)
            for rec in json.load(f):
                yield rec


def cross_check_schema(path):
    s = json.load(open(path, encoding="utf-8"))
    user = s["definitions"]["user"]
    cph = user["properties"]["custom_password_hash"]
    diffs = []
    if set(user["properties"]) != set(TOP_LEVEL):
        diffs.append("top-level keys: schema %s vs checker %s" % (sorted(user["properties"]), sorted(TOP_LEVEL)))
    if set(cph["properties"]) != CPH_KEYS:
        diffs.append("custom_password_hash keys differ")
    if set(cph["properties"]["algorithm"]["enum"]) != ALGORITHMS:
        diffs.append("algorithm enum differs")
    if user.get("required") != ["email"] or user.get("additionalProperties") is not False:
        diffs.append("required/additionalProperties differ")
    mfa = user["properties"]["mfa_factors"]
    if (mfa.get("minItems"), mfa.get("maxItems")) != (1, 10):
        diffs.append("mfa_factors limits differ")
    return diffs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("--format", choices=["auto", "json", "ndjson", "auth0-export"], default="auto")
    ap.add_argument("--limit", type=int, default=0, help="check only the first N records")
    ap.add_argument("--labels", help="generator --labels file; compare flagged vs labelled indices")
    ap.add_argument("--schema", help="user-import.schema.json to cross-check the built-in key lists")
    ap.add_argument("--show", type=int, default=5, help="print the first N problem records")
    a = ap.parse_args(argv)

    if a.schema:
        diffs = cross_check_schema(a.schema)
        for d in diffs:
            print("schema drift:", d)
        if diffs:
            return 2
        print("schema cross-check: built-in rules match %s" % a.schema)

    export = a.format == "auth0-export"
    seen_email, seen_username, seen_uid = set(), set(), set()
    by_problem = Counter()
    flagged = set()
    export_shape_errors = 0
    n = 0
    shown = 0
    for i, u in enumerate(records(a.file, "ndjson" if export else a.format)):
        if a.limit and i >= a.limit:
            break
        n += 1
        if export:
            if not str(u.get("user_id", "")).startswith("auth0|") or "identities" not in u:
                export_shape_errors += 1
            u = from_export(u)
        problems = []
        check_user(u, problems)
        if isinstance(u, dict):
            e = u.get("email")
            if isinstance(e, str):
                if e.lower() in seen_email:
                    problems.append("dup_email")
                seen_email.add(e.lower())
            un = u.get("username")
            if isinstance(un, str):
                if un.lower() in seen_username:
                    problems.append("dup_username")
                seen_username.add(un.lower())
            uid = u.get("user_id")
            if isinstance(uid, str):
                if uid in seen_uid:
                    problems.append("dup_user_id")
                seen_uid.add(uid)
        if problems:
            flagged.add(i)
            for p in set(problems):
                by_problem[p if p.startswith("wrong_type") else p.split(":")[0]] += 1
            if shown < a.show:
                print("record %d: %s" % (i, ", ".join(problems)))
                shown += 1

    print("checked %d records: %d valid, %d invalid" % (n, n - len(flagged), len(flagged)))
    for p, c in sorted(by_problem.items(), key=lambda x: -x[1]):
        print("  %-32s %d" % (p, c))
    if export:
        print("export shape (auth0| prefix + identities) missing in %d records" % export_shape_errors)
    ok = not flagged and not export_shape_errors
    if a.labels:
        labelled = {}
        with open(a.labels, encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                if not a.limit or d["index"] < a.limit:
                    labelled[d["index"]] = d["kind"]
        missed = sorted(set(labelled) - flagged)
        extra = sorted(flagged - set(labelled))
        print("labels: %d labelled invalid, %d flagged; missed %d %s; unexpected %d %s"
              % (len(labelled), len(flagged), len(missed),
                 [(m, labelled[m]) for m in missed[:5]], len(extra), extra[:5]))
        ok = not missed and not extra and not export_shape_errors
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
