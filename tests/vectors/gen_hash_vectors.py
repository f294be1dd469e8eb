#!/usr/bin/env python3
"""Password-hash test vectors from implementations independent of ours.

Writes one JSON file (the path given as the only argument) with:
  verify:  [{family, reading, record, password, expect, label}]  an Auth0 import record (the
           user object) whose hash was made here, a password, and whether Auth0 would accept it;
  convert: [{format, stored, password, expect, label}]  a legacy system's stored hash string
           for `password` (expect "ok"), or a format Auth0 cannot import (expect "unsupported").

Every hash is computed by Python's hashlib/hmac (OpenSSL), bcrypt, argon2-cffi, passlib, Django
or Werkzeug: never by the code under test. Password bytes for `password.encoding` come from
Node.js's Buffer.from (the runtime Auth0 verifies with) when `node` is on PATH. Deterministic:
salts and passwords come from a seeded generator (bcrypt, Django and Werkzeug are handed the
salt). OpenSSL's legacy provider is switched on for MD4 and Whirlpool (re-exec with OPENSSL_CONF).
"""

import base64
import hashlib
import hmac
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")

OPENSSL_CONF = """openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
legacy = legacy_sect
[default_sect]
activate = 1
[legacy_sect]
activate = 1
"""


def ensure_legacy_digests():
    """MD4 and Whirlpool live in OpenSSL 3's legacy provider: restart with it enabled."""
    try:
        hashlib.new("md4", b"")
        hashlib.new("whirlpool", b"")
        return
    except ValueError:
        pass
    if os.environ.get("GEN_HASH_VECTORS_REEXEC"):
        sys.exit("OpenSSL's legacy provider (md4, whirlpool) is not available to Python")
    conf = tempfile.NamedTemporaryFile("w", suffix=".cnf", delete=False)
    conf.write(OPENSSL_CONF)
    conf.close()
    env = dict(os.environ, OPENSSL_CONF=conf.name, GEN_HASH_VECTORS_REEXEC="1")
    code = subprocess.call([sys.executable] + sys.argv, env=env)
    os.unlink(conf.name)
    sys.exit(code)


ensure_legacy_digests()

import argon2.low_level as argon2_ll  # noqa: E402
import bcrypt  # noqa: E402
from passlib import hash as passlib_hash  # noqa: E402

RNG = random.Random(18)

PASSWORDS = [
    "correct horse battery staple",
    "P@ssw0rd!",
    "pässwörd-ÄÖÜ",
    "密码123",
    "🔑 key to the café",
    "tab\tand \"quotes\" \\ back",
]
# More than bcrypt's 72 input bytes: Auth0's bcrypt ignores what follows.
LONG_PASSWORD = "L" * 40 + "ong-password-past-seventy-two-bytes-" + "x" * 10

PASSWORD_ENCODINGS = ["utf8", "utf16le", "ucs2", "latin1", "binary", "ascii"]


def node_buffer_bytes(pairs):
    """Buffer.from(password, encoding) for each pair, by Node.js when it is installed."""
    node = shutil.which("node")
    if node:
        script = (
            "const pairs = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
            "process.stdout.write(JSON.stringify(pairs.map(([s, e]) => Buffer.from(s, e).toString('hex'))));"
        )
        out = subprocess.run([node, "-e", script], input=json.dumps(pairs), capture_output=True, text=True, check=True)
        return [bytes.fromhex(h) for h in json.loads(out.stdout)]
    # Node's documented semantics, for machines without Node.
    result = []
    for s, e in pairs:
        units = s.encode("utf-16-le")
        if e in ("utf16le", "ucs2"):
            result.append(units)
        elif e in ("latin1", "binary", "ascii"):
            result.append(bytes(units[i] for i in range(0, len(units), 2)))
        else:
            result.append(s.encode("utf-8"))
    return result


_ENCODED = {}


def encoded(password, encoding):
    return _ENCODED[(password, encoding)]


def prepare_encodings():
    pairs = [[p, e] for p in PASSWORDS + [LONG_PASSWORD] for e in PASSWORD_ENCODINGS]
    for (p, e), b in zip(pairs, node_buffer_bytes(pairs)):
        _ENCODED[(p, e)] = b


def rand_bytes(n):
    return bytes(RNG.getrandbits(8) for _ in range(n))


def rand_text(n):
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(RNG.choice(alphabet) for _ in range(n))


def wrong(password):
    return password + "x"


def enc_value(raw, encoding):
    """Text of `raw` in a value encoding (utf8 only for text-safe raw)."""
    if encoding == "hex":
        return raw.hex()
    if encoding == "hex-upper":
        return raw.hex().upper()
    if encoding == "base64":
        return base64.b64encode(raw).decode()
    if encoding == "base64url":
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    if encoding == "utf8":
        return raw.decode("utf-8")
    raise ValueError(encoding)


def declared(encoding):
    return {"hex-upper": "hex", "base64url": "base64"}.get(encoding, encoding)


def salt_in(encoding):
    """A salt and its text in `encoding`."""
    if encoding == "utf8":
        text = rand_text(12)
        return text.encode(), text
    raw = rand_bytes(16)
    return raw, enc_value(raw, encoding)


def b64_phc(raw):
    return base64.b64encode(raw).decode().rstrip("=")


def bcrypt_b64(raw16):
    std = base64.b64encode(raw16).decode().rstrip("=")
    table = str.maketrans(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    )
    return std.translate(table)


def bcrypt_hash(data, cost, version="2b"):
    """bcrypt of `data` (truncated to 72 bytes first: bcrypt 5 refuses longer input) with a seeded salt."""
    salt = ("$2b$%02d$" % cost + bcrypt_b64(rand_bytes(16))).encode()
    h = bcrypt.hashpw(data[:72], salt).decode()
    # $2a$, $2b$ and $2y$ name the same computation for input without 8-bit wrap-around bugs.
    return "$" + version + h[3:]


VERIFY = []
CONVERT = []


def add(family, record, password, label, reading="default", negative=True):
    VERIFY.append({"family": family, "reading": reading, "record": record, "password": password, "expect": True, "label": label})
    if negative:
        VERIFY.append({"family": family, "reading": reading, "record": record, "password": wrong(password), "expect": False, "label": label + " (wrong password)"})


def user(i, **fields):
    base = {"email": "user%d@example.com" % i, "email_verified": True}
    base.update(fields)
    return base


def cph(algorithm, hash_obj, **extra):
    out = {"algorithm": algorithm, "hash": hash_obj}
    out.update(extra)
    return out


def with_salt(position, salt_raw, password_bytes):
    return salt_raw + password_bytes if position == "prefix" else password_bytes + salt_raw


def salt_obj(text, encoding, position, explicit_position=True):
    obj = {"value": text}
    if encoding != "utf8" or RNG.random() < 0.5:
        obj["encoding"] = encoding
    if explicit_position or position != "prefix":
        obj["position"] = position
    return obj


def password_obj(encoding):
    return {"password": {"encoding": encoding}} if encoding != "utf8" else {}


# ---- password_hash (Auth0's own bcrypt) -------------------------------------------------------
def gen_password_hash():
    for i, version in enumerate(["2a", "2b", "2b", "2a"]):
        pw = PASSWORDS[i]
        add("password_hash", user(i, password_hash=bcrypt_hash(pw.encode(), 10, version)), pw, "password_hash $%s$10$" % version)


# ---- bcrypt --------------------------------------------------------------------------------
def gen_bcrypt():
    n = 0
    for version in ["2a", "2b", "2y"]:
        for cost in [4, 5]:
            pw = PASSWORDS[n % len(PASSWORDS)]
            add("bcrypt", user(n, custom_password_hash=cph("bcrypt", {"value": bcrypt_hash(pw.encode(), cost, version), "encoding": "utf8"})), pw, "bcrypt $%s$%02d$ no salt" % (version, cost))
            n += 1
    for cost in [10, 12]:
        pw = PASSWORDS[n % len(PASSWORDS)]
        add("bcrypt", user(n, custom_password_hash=cph("bcrypt", {"value": bcrypt_hash(pw.encode(), cost), "encoding": "utf8"})), pw, "bcrypt cost %d" % cost, negative=False)
        n += 1
    for position in ["prefix", "suffix"]:
        for s_enc in ["utf8", "hex", "base64"]:
            pw = PASSWORDS[n % len(PASSWORDS)]
            raw, text = salt_in(s_enc)
            h = bcrypt_hash(with_salt(position, raw, pw.encode()), 4)
            rec = cph("bcrypt", {"value": h, "encoding": "utf8"}, salt=salt_obj(text, s_enc, position, position == "suffix" or n % 2 == 0))
            add("bcrypt", user(n, custom_password_hash=rec), pw, "bcrypt salt %s %s" % (position, s_enc))
            n += 1
    # bcrypt refuses NUL bytes, which utf16le/ucs2 produce: only the one-byte encodings here.
    for p_enc in ["latin1", "binary", "ascii", "utf8"]:
        pw = PASSWORDS[2]
        h = bcrypt_hash(encoded(pw, p_enc), 4)
        add("bcrypt", user(n, custom_password_hash=cph("bcrypt", {"value": h, "encoding": "utf8"}, **password_obj(p_enc))), pw, "bcrypt password.encoding %s" % p_enc)
        n += 1
    h = bcrypt_hash(LONG_PASSWORD.encode(), 4)
    add("bcrypt", user(n, custom_password_hash=cph("bcrypt", {"value": h, "encoding": "utf8"})), LONG_PASSWORD, "bcrypt past 72 bytes", negative=False)
    VERIFY.append({"family": "bcrypt", "reading": "default", "record": user(n, custom_password_hash=cph("bcrypt", {"value": h, "encoding": "utf8"})), "password": LONG_PASSWORD[:71], "expect": False, "label": "bcrypt 71 of 72 bytes"})


# ---- argon2 --------------------------------------------------------------------------------
ARGON2_TYPES = {"argon2i": argon2_ll.Type.I, "argon2d": argon2_ll.Type.D, "argon2id": argon2_ll.Type.ID}


def argon2_phc(data, kind, t=1, m=256, p=1, hash_len=32, salt_len=16):
    return argon2_ll.hash_secret(data, rand_bytes(salt_len), time_cost=t, memory_cost=m, parallelism=p, hash_len=hash_len, type=ARGON2_TYPES[kind]).decode()


def gen_argon2():
    n = 100
    for kind in ARGON2_TYPES:
        for (t, m, p, hl) in [(1, 256, 1, 32), (2, 512, 2, 16), (3, 64, 1, 64)]:
            pw = PASSWORDS[n % len(PASSWORDS)]
            add("argon2", user(n, custom_password_hash=cph("argon2", {"value": argon2_phc(pw.encode(), kind, t, m, p, hl), "encoding": "utf8"})), pw, "%s t=%d m=%d p=%d len=%d" % (kind, t, m, p, hl))
            n += 1
    # Auth0's documented example shape: m=65536,t=2,p=1.
    pw = PASSWORDS[0]
    add("argon2", user(n, custom_password_hash=cph("argon2", {"value": argon2_phc(pw.encode(), "argon2id", 2, 65536, 1), "encoding": "utf8"})), pw, "argon2id m=65536 t=2 p=1", negative=False)
    n += 1
    for p_enc in PASSWORD_ENCODINGS:
        pw = PASSWORDS[4]
        add("argon2", user(n, custom_password_hash=cph("argon2", {"value": argon2_phc(encoded(pw, p_enc), "argon2id"), "encoding": "utf8"}, **password_obj(p_enc))), pw, "argon2id password.encoding %s" % p_enc)
        n += 1


# ---- hmac ----------------------------------------------------------------------------------
HMAC_DIGESTS = ["md4", "md5", "ripemd160", "sha1", "sha224", "sha256", "sha384", "sha512", "whirlpool"]


def gen_hmac():
    n = 200
    for digest in HMAC_DIGESTS:
        for k_enc in ["utf8", "hex", "base64", None]:
            for h_enc in ["hex", "base64"]:
                for position in [None, "prefix", "suffix"]:
                    pw = PASSWORDS[n % len(PASSWORDS)]
                    key_raw, key_text = salt_in(k_enc or "utf8")
                    key = {"value": key_text}
                    if k_enc:
                        key["encoding"] = k_enc
                    message = pw.encode()
                    extra = {}
                    if position:
                        s_raw, s_text = salt_in(["utf8", "hex", "base64"][n % 3])
                        message = with_salt(position, s_raw, message)
                        extra["salt"] = salt_obj(s_text, ["utf8", "hex", "base64"][n % 3], position)
                    mac = hmac.new(key_raw, message, digest).digest()
                    rec = cph("hmac", {"value": enc_value(mac, h_enc), "encoding": h_enc, "digest": digest, "key": key}, **extra)
                    add("hmac", user(n, custom_password_hash=rec), pw, "hmac-%s key %s hash %s salt %s" % (digest, k_enc or "default", h_enc, position or "none"), negative=(n % 2 == 0))
                    n += 1
        # The other reading of a salt with hmac: the salt is not part of the message.
        for position in ["prefix", "suffix"]:
            pw = PASSWORDS[n % len(PASSWORDS)]
            key_raw, key_text = salt_in("hex")
            s_raw, s_text = salt_in("utf8")
            mac = hmac.new(key_raw, pw.encode(), digest).digest()
            rec = cph("hmac", {"value": mac.hex(), "encoding": "hex", "digest": digest, "key": {"value": key_text, "encoding": "hex"}}, salt=salt_obj(s_text, "utf8", position))
            # Verified with the salt ignored (the reading we did not choose), and refused by the default reading.
            add("hmac", user(n, custom_password_hash=rec), pw, "hmac-%s salt %s ignored" % (digest, position), reading="hmac_salt_ignored")
            VERIFY.append({"family": "hmac", "reading": "default", "record": user(n, custom_password_hash=rec), "password": pw, "expect": False, "label": "hmac-%s salt-ignored hash under the default reading" % digest})
            n += 1
    for p_enc in PASSWORD_ENCODINGS:
        pw = PASSWORDS[3]
        mac = hmac.new(b"secret-key", encoded(pw, p_enc), "sha256").digest()
        rec = cph("hmac", {"value": mac.hex(), "encoding": "hex", "digest": "sha256", "key": {"value": "secret-key"}}, **password_obj(p_enc))
        add("hmac", user(n, custom_password_hash=rec), pw, "hmac-sha256 password.encoding %s" % p_enc)
        n += 1


# ---- ldap ----------------------------------------------------------------------------------
LDAP = {"MD5": ("md5", False), "SMD5": ("md5", True), "SHA": ("sha1", False), "SSHA": ("sha1", True),
        "SHA256": ("sha256", False), "SSHA256": ("sha256", True), "SHA384": ("sha384", False),
        "SSHA384": ("sha384", True), "SHA512": ("sha512", False), "SSHA512": ("sha512", True)}
PASSLIB_LDAP = {"MD5": passlib_hash.ldap_md5, "SMD5": passlib_hash.ldap_salted_md5, "SHA": passlib_hash.ldap_sha1,
                "SSHA": passlib_hash.ldap_salted_sha1, "SSHA256": passlib_hash.ldap_salted_sha256,
                "SSHA512": passlib_hash.ldap_salted_sha512}


def ldap_value(scheme, data, salt_len=8):
    digest, salted = LDAP[scheme]
    if scheme in PASSLIB_LDAP:
        handler = PASSLIB_LDAP[scheme]
        if salted:
            handler = handler.using(salt=rand_bytes(salt_len))
        # passlib takes text; the bytes it hashes are the password's UTF-8.
        return handler.hash(data.decode("utf-8"))
    # RFC 2307 layout passlib has no handler for: {SCHEME}base64(digest(password ‖ salt) ‖ salt).
    salt = rand_bytes(salt_len) if salted else b""
    return "{%s}%s" % (scheme, base64.b64encode(hashlib.new(digest, data + salt).digest() + salt).decode())


def gen_ldap():
    n = 400
    for scheme in LDAP:
        for i in range(2):
            pw = PASSWORDS[(n + i) % len(PASSWORDS)]
            add("ldap", user(n, custom_password_hash=cph("ldap", {"value": ldap_value(scheme, pw.encode(), 4 + 4 * i), "encoding": "utf8"})), pw, "ldap {%s}" % scheme)
            n += 1
    for p_enc in PASSWORD_ENCODINGS:
        pw = PASSWORDS[2]
        salt = rand_bytes(8)
        value = "{SSHA}" + base64.b64encode(hashlib.sha1(encoded(pw, p_enc) + salt).digest() + salt).decode()
        add("ldap", user(n, custom_password_hash=cph("ldap", {"value": value, "encoding": "utf8"}, **password_obj(p_enc))), pw, "ldap {SSHA} password.encoding %s" % p_enc)
        n += 1


# ---- md4 md5 sha1 sha256 sha512 ----------------------------------------------------------------
def gen_plain():
    n = 500
    for algorithm in ["md4", "md5", "sha1", "sha256", "sha512"]:
        for h_enc in ["hex", "base64", "hex-upper", "base64url"]:
            for position in [None, "prefix", "suffix"]:
                for s_enc in (["utf8", "hex", "base64"] if position else [None]):
                    pw = PASSWORDS[n % len(PASSWORDS)]
                    data = pw.encode()
                    extra = {}
                    if position:
                        raw, text = salt_in(s_enc)
                        data = with_salt(position, raw, data)
                        extra["salt"] = salt_obj(text, s_enc, position, n % 2 == 0)
                    digest = hashlib.new(algorithm, data).digest()
                    rec = cph(algorithm, {"value": enc_value(digest, h_enc), "encoding": declared(h_enc)}, **extra)
                    add(algorithm, user(n, custom_password_hash=rec), pw, "%s hash %s salt %s %s" % (algorithm, h_enc, position or "none", s_enc or ""))
                    n += 1
        for p_enc in PASSWORD_ENCODINGS:
            pw = PASSWORDS[(n % 3) + 2]
            raw, text = salt_in("hex")
            digest = hashlib.new(algorithm, with_salt("suffix", raw, encoded(pw, p_enc))).digest()
            rec = cph(algorithm, {"value": digest.hex(), "encoding": "hex"}, salt=salt_obj(text, "hex", "suffix"), **password_obj(p_enc))
            add(algorithm, user(n, custom_password_hash=rec), pw, "%s password.encoding %s" % (algorithm, p_enc))
            n += 1


# ---- pbkdf2 --------------------------------------------------------------------------------
PBKDF2_NAMES = {
    "RSA-MD4": "md4", "RSA-MD5": "md5", "RSA-RIPEMD160": "ripemd160", "RSA-SHA1": "sha1", "RSA-SHA1-2": "sha1",
    "RSA-SHA224": "sha224", "RSA-SHA256": "sha256", "RSA-SHA384": "sha384", "RSA-SHA512": "sha512",
    "md4": "md4", "md4WithRSAEncryption": "md4", "md5": "md5", "md5WithRSAEncryption": "md5",
    "ripemd": "ripemd160", "ripemd160": "ripemd160", "ripemd160WithRSA": "ripemd160", "rmd160": "ripemd160",
    "sha1": "sha1", "sha1WithRSAEncryption": "sha1", "sha224": "sha224", "sha224WithRSAEncryption": "sha224",
    "sha256": "sha256", "sha256WithRSAEncryption": "sha256", "sha384": "sha384",
    "sha384WithRSAEncryption": "sha384", "sha512": "sha512", "sha512WithRSAEncryption": "sha512",
    "ssl3-md5": "md5", "ssl3-sha1": "sha1", "whirlpool": "whirlpool",
}


def pbkdf2_phc(name, data, iterations, length, params="il"):
    salt = rand_bytes(16)
    dk = hashlib.pbkdf2_hmac(PBKDF2_NAMES[name], data, salt, iterations, length)
    fields = []
    if "i" in params:
        fields.append("i=%d" % iterations)
    if "l" in params:
        fields.append("l=%d" % length)
    middle = ("$" + ",".join(fields)) if fields else ""
    return "$pbkdf2-%s%s$%s$%s" % (name, middle, b64_phc(salt), b64_phc(dk))


def gen_pbkdf2():
    n = 700
    for name in PBKDF2_NAMES:
        pw = PASSWORDS[n % len(PASSWORDS)]
        length = [16, 20, 32, 64][n % 4]
        add("pbkdf2", user(n, custom_password_hash=cph("pbkdf2", {"value": pbkdf2_phc(name, pw.encode(), 1000, length), "encoding": "utf8"})), pw, "pbkdf2-%s i=1000 l=%d" % (name, length), negative=(n % 3 == 0))
        n += 1
    # Auth0's defaults when i= or l= is omitted: 100000 iterations, 64 bytes.
    for params, it, ln in [("", 100000, 64), ("i", 1000, 64), ("l", 100000, 32)]:
        pw = PASSWORDS[n % len(PASSWORDS)]
        add("pbkdf2", user(n, custom_password_hash=cph("pbkdf2", {"value": pbkdf2_phc("sha256", pw.encode(), it, ln, params), "encoding": "utf8"})), pw, "pbkdf2-sha256 params '%s' (defaults)" % params, negative=False)
        n += 1
    # A hash made with other parameters than the defaults the record leaves implicit does not verify.
    pw = PASSWORDS[0]
    salt = rand_bytes(16)
    dk = hashlib.pbkdf2_hmac("sha256", pw.encode(), salt, 1000, 64)
    VERIFY.append({"family": "pbkdf2", "reading": "default", "record": user(n, custom_password_hash=cph("pbkdf2", {"value": "$pbkdf2-sha256$l=64$%s$%s" % (b64_phc(salt), b64_phc(dk)), "encoding": "utf8"})), "password": pw, "expect": False, "label": "pbkdf2 made with i=1000, record omits i= (default 100000)"})
    n += 1
    for p_enc in PASSWORD_ENCODINGS:
        pw = PASSWORDS[5]
        add("pbkdf2", user(n, custom_password_hash=cph("pbkdf2", {"value": pbkdf2_phc("sha512", encoded(pw, p_enc), 1000, 64), "encoding": "utf8"}, **password_obj(p_enc))), pw, "pbkdf2-sha512 password.encoding %s" % p_enc)
        n += 1


# ---- scrypt --------------------------------------------------------------------------------
def gen_scrypt():
    n = 800
    cases = [  # (cost, blockSize, parallelization, keylen, which params the record states)
        (16, 8, 1, 32, "cbp"), (1024, 8, 1, 64, "cbp"), (256, 4, 2, 16, "cbp"), (64, 1, 1, 48, "cbp"),
        (16384, 8, 1, 32, ""), (16384, 8, 1, 64, "c"), (512, 8, 1, 32, "cb"), (128, 2, 3, 24, "cbp"),
    ]
    for i, (cost, r, p, keylen, states) in enumerate(cases):
        for h_enc in ["hex", "base64"]:
            pw = PASSWORDS[n % len(PASSWORDS)]
            s_enc = ["utf8", "hex", "base64"][n % 3]
            raw, text = salt_in(s_enc)
            dk = hashlib.scrypt(pw.encode(), salt=raw, n=cost, r=r, p=p, dklen=keylen, maxmem=256 * 1024 * 1024)
            extra = {"keylen": keylen, "salt": salt_obj(text, s_enc, "prefix", False)}
            if "c" in states:
                extra["cost"] = cost
            if "b" in states:
                extra["blockSize"] = r
            if "p" in states:
                extra["parallelization"] = p
            add("scrypt", user(n, custom_password_hash=cph("scrypt", {"value": enc_value(dk, h_enc), "encoding": h_enc}, **extra)), pw, "scrypt N=%d r=%d p=%d keylen=%d states '%s' hash %s salt %s" % (cost, r, p, keylen, states, h_enc, s_enc), negative=(cost <= 1024))
            n += 1
    for p_enc in PASSWORD_ENCODINGS:
        pw = PASSWORDS[2]
        dk = hashlib.scrypt(encoded(pw, p_enc), salt=b"NaCl", n=64, r=8, p=1, dklen=32)
        rec = cph("scrypt", {"value": dk.hex(), "encoding": "hex"}, salt={"value": "NaCl"}, keylen=32, cost=64, **password_obj(p_enc))
        add("scrypt", user(n, custom_password_hash=rec), pw, "scrypt password.encoding %s" % p_enc)
        n += 1


# ---- legacy formats for the converter -------------------------------------------------------------
def conv(fmt, stored, password, label, expect="ok"):
    CONVERT.append({"format": fmt, "stored": stored, "password": password, "expect": expect, "label": label})


def gen_convert():
    from django.conf import settings
    settings.configure(PASSWORD_HASHERS=[], USE_TZ=True)
    import django.contrib.auth.hashers as dj
    from werkzeug import security as wz

    pw = PASSWORDS
    # bcrypt, any cost and prefix.
    for version, cost in [("2a", 10), ("2b", 10), ("2y", 10), ("2b", 4), ("2a", 12), ("2y", 5)]:
        conv("bcrypt", bcrypt_hash(pw[cost % 6].encode(), cost, version), pw[cost % 6], "bcrypt $%s$%02d$" % (version, cost))

    # Django, each hasher with its own encode() and a seeded salt.
    class Argon2(dj.Argon2PasswordHasher):
        time_cost, memory_cost, parallelism = 1, 256, 2

    class BCrypt(dj.BCryptPasswordHasher):
        rounds = 4

    class BCryptSHA256(dj.BCryptSHA256PasswordHasher):
        rounds = 4

    class Scrypt(dj.ScryptPasswordHasher):
        work_factor, block_size, parallelism = 2 ** 8, 8, 1

    class PBKDF2(dj.PBKDF2PasswordHasher):
        iterations = 1000

    class PBKDF2SHA1(dj.PBKDF2SHA1PasswordHasher):
        iterations = 1200

    for hasher, p in [(PBKDF2(), pw[0]), (PBKDF2SHA1(), pw[2]), (Argon2(), pw[3]), (Scrypt(), pw[4]), (dj.MD5PasswordHasher(), pw[1])]:
        conv("django", hasher.encode(p, rand_text(22)), p, "django %s" % hasher.algorithm)
    # Django's bcrypt hashers take a bcrypt salt string (theirs comes from bcrypt.gensalt).
    def bcrypt_salt():
        return ("$2b$04$" + bcrypt_b64(rand_bytes(16))).encode()
    conv("django", BCrypt().encode(pw[5], bcrypt_salt()), pw[5], "django bcrypt")
    conv("django", BCryptSHA256().encode(pw[0], bcrypt_salt()), pw[0], "django bcrypt_sha256", expect="unsupported")
    # Hashers Django has since removed; passlib keeps their formats.
    conv("django", passlib_hash.django_salted_sha1.using(salt=rand_text(12)).hash(pw[1]), pw[1], "django sha1 (salted)")
    conv("django", passlib_hash.django_salted_md5.using(salt=rand_text(12)).hash(pw[2]), pw[2], "django md5 (salted, passlib)")
    conv("django", "sha1$$" + hashlib.sha1(pw[3].encode()).hexdigest(), pw[3], "django unsalted_sha1")
    conv("django", hashlib.md5(pw[4].encode()).hexdigest(), pw[4], "django unsalted_md5")
    conv("django", "md5$$" + hashlib.md5(pw[5].encode()).hexdigest(), pw[5], "django unsalted_md5 (md5$$ form)")

    # ASP.NET Identity: v2 = 0x00 ‖ salt(16) ‖ PBKDF2-HMAC-SHA1(1000, 32); v3 = 0x01 ‖ prf ‖ iter ‖ saltlen ‖ salt ‖ subkey.
    salt = rand_bytes(16)
    v2 = b"\x00" + salt + hashlib.pbkdf2_hmac("sha1", pw[0].encode(), salt, 1000, 32)
    conv("aspnet-identity", base64.b64encode(v2).decode(), pw[0], "aspnet-identity v2")
    for prf, digest, iterations in [(0, "sha1", 1000), (1, "sha256", 10000), (2, "sha512", 2000)]:
        salt = rand_bytes(16)
        sub = hashlib.pbkdf2_hmac(digest, pw[prf + 1].encode(), salt, iterations, 32)
        v3 = b"\x01" + struct.pack(">III", prf, iterations, len(salt)) + salt + sub
        conv("aspnet-identity", base64.b64encode(v3).decode(), pw[prf + 1], "aspnet-identity v3 %s" % digest)

    # Keycloak credential objects (secretData/credentialData are JSON strings in its database and exports).
    for algorithm, digest, iterations, length in [("pbkdf2-sha256", "sha256", 27500, 64), ("pbkdf2-sha512", "sha512", 2000, 64), ("pbkdf2", "sha1", 1000, 64), ("pbkdf2-sha1", "sha1", 1500, 20)]:
        salt = rand_bytes(16)
        value = hashlib.pbkdf2_hmac(digest, pw[2].encode(), salt, iterations, length)
        credential = {
            "type": "password",
            "secretData": json.dumps({"value": base64.b64encode(value).decode(), "salt": base64.b64encode(salt).decode(), "additionalParameters": {}}),
            "credentialData": json.dumps({"hashIterations": iterations, "algorithm": algorithm, "additionalParameters": {}}),
        }
        conv("keycloak", json.dumps(credential), pw[2], "keycloak %s" % algorithm)
    salt = rand_bytes(16)
    raw = argon2_ll.hash_secret_raw(pw[3].encode(), salt, time_cost=3, memory_cost=512, parallelism=1, hash_len=32, type=argon2_ll.Type.ID)
    credential = {
        "type": "password",
        "secretData": {"value": base64.b64encode(raw).decode(), "salt": base64.b64encode(salt).decode(), "additionalParameters": {}},
        "credentialData": {"hashIterations": 3, "algorithm": "argon2", "additionalParameters": {"hashLength": ["32"], "memory": ["512"], "type": ["id"], "version": ["1.3"], "parallelism": ["1"]}},
    }
    conv("keycloak", json.dumps(credential), pw[3], "keycloak argon2 (objects, not strings)")

    # Werkzeug: generate_password_hash, with its salt generator seeded.
    wz.gen_salt = lambda length: rand_text(length)
    for method, p in [("pbkdf2:sha256:1000", pw[0]), ("pbkdf2:sha512:1500", pw[2]), ("pbkdf2:sha1:1000", pw[3]), ("scrypt:256:8:1", pw[4])]:
        conv("werkzeug", wz.generate_password_hash(p, method), p, "werkzeug %s" % method)

    # passlib's own formats.
    for handler, p, label in [
        (passlib_hash.pbkdf2_sha256.using(rounds=1000, salt=rand_bytes(16)), pw[0], "passlib pbkdf2-sha256"),
        (passlib_hash.pbkdf2_sha512.using(rounds=1000, salt=rand_bytes(16)), pw[1], "passlib pbkdf2-sha512"),
        (passlib_hash.pbkdf2_sha1.using(rounds=1000, salt=rand_bytes(16)), pw[2], "passlib pbkdf2 (sha1)"),
        (passlib_hash.scrypt.using(rounds=6, salt=rand_bytes(16), block_size=8, parallelism=1), pw[3], "passlib scrypt"),
        (passlib_hash.ldap_salted_sha1.using(salt=rand_bytes(4)), pw[4], "passlib ldap_salted_sha1"),
    ]:
        conv("passlib", handler.hash(p), p, label)

    # PHP password_hash: $2y$ is PHP's label for the same bcrypt; argon2 strings are libargon2's, like argon2-cffi's.
    conv("php", bcrypt_hash(pw[1].encode(), 10, "2y"), pw[1], "php PASSWORD_BCRYPT $2y$10$")
    conv("php", argon2_phc(pw[2].encode(), "argon2i", t=4, m=256, p=1), pw[2], "php PASSWORD_ARGON2I")
    conv("php", argon2_phc(pw[3].encode(), "argon2id", t=4, m=256, p=1), pw[3], "php PASSWORD_ARGON2ID")

    # LDAP userPassword values.
    for scheme in ["SSHA", "SHA", "SMD5", "MD5", "SSHA256", "SSHA512", "SHA256", "SHA512"]:
        conv("ldap", ldap_value(scheme, pw[0].encode()), pw[0], "ldap {%s}" % scheme)

    # A bare digest with its salt kept apart (a column beside the hash): convert_digest.
    for algorithm, digest_enc, salt_enc, position in [("sha256", "hex", "utf8", "prefix"), ("sha1", "base64", "hex", "suffix"),
                                                       ("md5", "hex", None, None), ("sha512", "base64", "base64", "prefix"),
                                                       ("md4", "hex", "utf8", "suffix")]:
        p = pw[2]
        data = p.encode()
        salt = None
        if salt_enc:
            raw, text = salt_in(salt_enc)
            data = with_salt(position, raw, data)
            salt = {"value": text, "encoding": salt_enc, "position": position}
        digest = hashlib.new(algorithm, data).digest()
        CONVERT.append({"format": "digest", "algorithm": algorithm, "salt": salt, "stored": enc_value(digest, digest_enc),
                        "password": p, "expect": "ok", "label": "bare %s %s digest, salt %s" % (algorithm, digest_enc, position or "none")})

    # Formats Auth0 cannot import: recognised and refused with what to do instead.
    conv("phpass", passlib_hash.phpass.using(salt=rand_text(8), ident="P").hash(pw[0]), pw[0], "phpass $P$", expect="unsupported")
    conv("phpass", passlib_hash.phpass.using(salt=rand_text(8), ident="H").hash(pw[0]), pw[0], "phpass $H$", expect="unsupported")
    conv("drupal7", "$S$D" + rand_text(8) + rand_text(43).replace("a", "."), pw[0], "drupal7 $S$ (shape)", expect="unsupported")
    conv("firebase-scrypt", base64.b64encode(rand_bytes(64)).decode(), pw[0], "firebase-scrypt", expect="unsupported")
    conv("php", passlib_hash.sha512_crypt.using(rounds=5000, salt=rand_text(16)).hash(pw[0]), pw[0], "sha512-crypt $6$ (multi-round SHA)", expect="unsupported")
    conv("passlib", passlib_hash.sha256_crypt.using(rounds=5000, salt=rand_text(16)).hash(pw[0]), pw[0], "sha256-crypt $5$ (multi-round SHA)", expect="unsupported")


def bench_records():
    """One record per algorithm at its default work factor, for `make bench-hash`."""
    pw = PASSWORDS[0]
    salt_raw, salt_text = salt_in("hex")
    key = b"bench-key"
    out = []

    def rec(algorithm, record):
        out.append({"algorithm": algorithm, "record": user(len(out), **record), "password": pw})

    rec("password_hash (bcrypt cost 10)", {"password_hash": bcrypt_hash(pw.encode(), 10)})
    rec("bcrypt cost 10", {"custom_password_hash": cph("bcrypt", {"value": bcrypt_hash(pw.encode(), 10, "2y"), "encoding": "utf8"})})
    rec("argon2id m=65536 t=2 p=1", {"custom_password_hash": cph("argon2", {"value": argon2_phc(pw.encode(), "argon2id", 2, 65536, 1), "encoding": "utf8"})})
    rec("pbkdf2-sha256 i=100000 l=64 (defaults)", {"custom_password_hash": cph("pbkdf2", {"value": pbkdf2_phc("sha256", pw.encode(), 100000, 64, ""), "encoding": "utf8"})})
    rec("pbkdf2-sha512 i=100000 l=64 (defaults)", {"custom_password_hash": cph("pbkdf2", {"value": pbkdf2_phc("sha512", pw.encode(), 100000, 64, ""), "encoding": "utf8"})})
    dk = hashlib.scrypt(pw.encode(), salt=salt_raw, n=16384, r=8, p=1, dklen=64)
    rec("scrypt N=16384 r=8 p=1 (defaults)", {"custom_password_hash": cph("scrypt", {"value": dk.hex(), "encoding": "hex"}, salt={"value": salt_text, "encoding": "hex"}, keylen=64)})
    rec("hmac-sha256", {"custom_password_hash": cph("hmac", {"value": hmac.new(key, pw.encode(), "sha256").hexdigest(), "encoding": "hex", "digest": "sha256", "key": {"value": key.decode()}})})
    rec("ldap {SSHA}", {"custom_password_hash": cph("ldap", {"value": ldap_value("SSHA", pw.encode()), "encoding": "utf8"})})
    for algorithm in ["md4", "md5", "sha1", "sha256", "sha512"]:
        d = hashlib.new(algorithm, salt_raw + pw.encode()).hexdigest()
        rec(algorithm, {"custom_password_hash": cph(algorithm, {"value": d, "encoding": "hex"}, salt={"value": salt_text, "encoding": "hex"})})
    return out


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--bench":
        with open(sys.argv[2], "w", encoding="utf-8") as out:
            json.dump(bench_records(), out, ensure_ascii=False)
        return
    if len(sys.argv) != 2:
        sys.exit("usage: gen_hash_vectors.py OUT.json | --bench OUT.json")
    prepare_encodings()
    for gen in [gen_password_hash, gen_bcrypt, gen_argon2, gen_hmac, gen_ldap, gen_plain, gen_pbkdf2, gen_scrypt]:
        gen()
    gen_convert()
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        json.dump({"node_encodings": bool(shutil.which("node")), "verify": VERIFY, "convert": CONVERT}, out, ensure_ascii=False)


if __name__ == "__main__":
    main()
