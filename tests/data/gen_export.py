#!/usr/bin/env python3
"""Generate a realistic, deterministic legacy user export for benchmarks and tests.

Records follow Auth0's bulk-import user schema (email, names, metadata, password hashes of
every supported algorithm, MFA factors). With --invalid-rate a fraction is made invalid in
varied, labelled ways. Output is streamed, so multi-GB files need no extra memory.

Examples:
  python3 tests/data/gen_export.py --users 10000 --out users.json
  python3 tests/data/gen_export.py --bytes 1G --out bench-data/export-1G.json
  python3 tests/data/gen_export.py --bytes 20M --format auth0-export --gzip --out tenant.json.gz
  python3 tests/data/gen_export.py --users 5000 --invalid-rate 0.02 --labels labels.ndjson --out x.json

Sizes take K/M/G suffixes (powers of 1024). --bytes counts uncompressed bytes; generation stops
at the first record that reaches the target, so the file is at most one record larger.

Formats:
  json         one JSON array, one record per line (what Auth0's import endpoint takes)
  ndjson       one record per line, no array
  auth0-export NDJSON shaped like Auth0's own user export: user_id prefixed "auth0|", export-only
               fields (created_at, updated_at, last_login, logins_count, identities, sometimes
               last_ip) and - like a real export - no password hashes and no MFA secrets.

Every email domain is a subdomain of example.com/.net/.org (RFC 2606); MFA phone numbers are in
fictional ranges and profile phone numbers use the unassigned country code +999, so a file
imported into a real tenant can never mail or text a real person.
"""
from __future__ import annotations

import argparse
import base64
import gzip
import random
import sys
import time
from collections import deque
from json import JSONEncoder

# ---------------------------------------------------------------------------------------------
# Static pools. Names are (display, ascii) pairs so emails/usernames stay ASCII while display
# names carry accents, CJK and Cyrillic.
# ---------------------------------------------------------------------------------------------

CULTURES = {
    # key: (weight, given names, family names, family-first without space, locales)
    "en": (40,
           [("James", "james"), ("Mary", "mary"), ("Robert", "robert"), ("Patricia", "patricia"),
            ("John", "john"), ("Jennifer", "jennifer"), ("Michael", "michael"), ("Linda", "linda"),
            ("David", "david"), ("Elizabeth", "elizabeth"), ("Sarah", "sarah"), ("Thomas", "thomas"),
            ("Emily", "emily"), ("Daniel", "daniel"), ("Olivia", "olivia"), ("Chloe", "chloe")],
           [("Smith", "smith"), ("Johnson", "johnson"), ("Williams", "williams"), ("Brown", "brown"),
            ("Jones", "jones"), ("Miller", "miller"), ("Davis", "davis"), ("Wilson", "wilson"),
            ("Taylor", "taylor"), ("Anderson", "anderson"), ("O'Brien", "obrien"),
            ("Clarke-Hughes", "clarke-hughes")],
           False, ["en-US", "en-GB", "en-AU", "en-CA"]),
    "fr": (12,
           [("Zoé", "zoe"), ("Hélène", "helene"), ("Jérôme", "jerome"), ("François", "francois"),
            ("Amélie", "amelie"), ("Léa", "lea"), ("Étienne", "etienne"), ("Chloé", "chloe"),
            ("Gaëlle", "gaelle"), ("Noël", "noel")],
           [("Lefèvre", "lefevre"), ("Dubois", "dubois"), ("Moreau", "moreau"),
            ("Lemaître", "lemaitre"), ("Bézier", "bezier"), ("Chênevert", "chenevert")],
           False, ["fr-FR", "fr-CA", "fr-BE"]),
    "de": (12,
           [("Jürgen", "juergen"), ("Jörg", "joerg"), ("Günter", "guenter"), ("Björn", "bjoern"),
            ("Sören", "soeren"), ("Anneliese", "anneliese"), ("Käthe", "kaethe"), ("Uwe", "uwe")],
           [("Müller", "mueller"), ("Schröder", "schroeder"), ("Groß", "gross"),
            ("Köhler", "koehler"), ("Weiß", "weiss"), ("Schäfer", "schaefer")],
           False, ["de-DE", "de-AT", "de-CH"]),
    "es": (12,
           [("José", "jose"), ("María", "maria"), ("Íñigo", "inigo"), ("Begoña", "begona"),
            ("Nuño", "nuno"), ("Martín", "martin"), ("Lucía", "lucia"), ("Sofía", "sofia"),
            ("Ángel", "angel")],
           [("Muñoz", "munoz"), ("Núñez", "nunez"), ("Peña", "pena"), ("Ibáñez", "ibanez"),
            ("García", "garcia"), ("Rodríguez", "rodriguez"), ("Fernández", "fernandez")],
           False, ["es-ES", "es-MX", "es-AR"]),
    "zh": (9,
           [("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("秀英", "xiuying"), ("敏", "min"),
            ("静", "jing"), ("强", "qiang"), ("磊", "lei")],
           [("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"),
            ("杨", "yang")],
           True, ["zh-CN", "zh-TW"]),
    "ru": (9,
           [("Александр", "aleksandr"), ("Дмитрий", "dmitriy"), ("Наталья", "natalya"),
            ("Ольга", "olga"), ("Сергей", "sergey"), ("Екатерина", "ekaterina")],
           [("Иванов", "ivanov"), ("Смирнов", "smirnov"), ("Кузнецова", "kuznetsova"),
            ("Попов", "popov"), ("Соколова", "sokolova")],
           False, ["ru-RU", "uk-UA"]),
    "ja": (6,
           [("翔太", "shota"), ("さくら", "sakura"), ("陽菜", "hina"), ("蓮", "ren")],
           [("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi"), ("田中", "tanaka")],
           True, ["ja-JP"]),
}
CULTURE_SLOTS = [c for c, v in CULTURES.items() for _ in range(v[0])]  # 100 weighted slots

DOMAINS = ["gmail.example.com", "yahoo.example.com", "outlook.example.net", "mail.example.org",
           "web-de.example.com", "orange.example.net", "qq.example.net", "acme-corp.example.com",
           "icloud.example.com", "gmx.example.org", "yandex.example.net", "example.com", "example.org"]
EMOJI = ["🚀", "🌸", "🐱", "🎸", "⚽", "☕", "🌈", "🦊", "🍕", "✨"]
TAGS = ["news", "shop", "work", "spam", "promo"]
PLANS = ["free", "free", "starter", "pro", "pro", "business", "enterprise"]
ROLES = ["admin", "editor", "viewer", "billing", "support", "owner", "auditor"]
FEATURES = ["reports", "api-access", "sso", "audit-log", "exports", "beta-ui", "webhooks"]
SOURCES = ["web", "ios", "android", "partner-portal", "import-2019", "sales"]
REGIONS = ["eu-west-1", "us-east-1", "ap-southeast-2", "eu-central-1"]
CURRENCIES = ["EUR", "USD", "GBP", "JPY", "CNY", "RUB"]
THEMES = ["light", "dark", "system"]
TIMEZONES = ["Europe/Paris", "Europe/Berlin", "America/New_York", "Asia/Shanghai", "Asia/Tokyo",
             "Europe/Moscow", "America/Mexico_City", "Australia/Sydney"]
CITIES = [("Paris", "FR"), ("Zürich", "CH"), ("München", "DE"), ("São Paulo", "BR"),
          ("北京", "CN"), ("Москва", "RU"), ("東京", "JP"), ("Bogotá", "CO"), ("Leeds", "GB")]
BIOS = ["Amateur pâtissier.", "Läuft gern im Wald.", "喜欢读书和旅行。", "Люблю горы.",
        "Coffee first ☕", "Fútbol y música.", "猫が好きです。", "Building things."]
LEGACY_SYSTEMS = ["oracle-crm", "php-forum", "django-app", "ldap-corp", "wordpress"]
RESERVED_APP_METADATA = ["__tenant", "_id", "blocked", "clientID", "created_at", "email_verified",
                         "email", "globalClientID", "global_client_id", "identities", "lastIP",
                         "lastLogin", "loginsCount", "metadata", "multifactor_last_modified",
                         "multifactor", "updated_at", "user_id"]

B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
BCRYPT_ALPHA = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

# Hash kind weights (percent). "none": no hash at all (user will have to reset the password).
HASH_WEIGHTS = [("none", 4), ("password_hash", 40), ("bcrypt", 6), ("argon2", 8), ("pbkdf2", 7),
                ("md5", 5), ("md4", 1), ("sha1", 5), ("sha256", 6), ("sha512", 5), ("hmac", 4),
                ("scrypt", 4), ("ldap", 5)]
HASH_SLOTS = [k for k, w in HASH_WEIGHTS for _ in range(w)]
assert len(HASH_SLOTS) == 100

INVALID_KINDS = ["missing_email", "bad_email", "unknown_key", "both_hashes", "argon2_salt",
                 "wrong_encoding", "reserved_app_metadata", "mfa_too_many", "totp_lowercase",
                 "dup_email_case", "dup_username", "email_verified_string"]
# Auth0 exports carry no hashes and no MFA secrets, so those mutations make no sense there.
EXPORT_INVALID_KINDS = [k for k in INVALID_KINDS
                        if k not in ("both_hashes", "argon2_salt", "wrong_encoding",
                                     "mfa_too_many", "totp_lowercase")]

POOL = 2048  # entries per random-string pool; two halves are combined -> POOL**2 distinct values


class Pools:
    """Precomputed random strings, so per-record work is indexing, not encoding."""

    def __init__(self, rng: random.Random):
        def b64(n, pad=True):
            s = base64.b64encode(rng.randbytes(n)).decode()
            return s if pad else s.rstrip("=")

        def many(f):
            return [f() for _ in range(POOL)]

        self.bcrypt_a = many(lambda: "".join(rng.choices(BCRYPT_ALPHA, k=22)))  # salt part
        self.bcrypt_b = many(lambda: "".join(rng.choices(BCRYPT_ALPHA, k=31)))  # hash part
        self.salt16_b64 = many(lambda: b64(16, pad=False))  # 22 chars (PHC, unpadded)
        self.h32_b64 = many(lambda: b64(32, pad=False))     # 43 chars
        self.h64_b64 = many(lambda: b64(64, pad=False))     # 86 chars
        # digests: (hex, padded base64) for a given byte length
        self.dig = {n: many(lambda n=n: rng.randbytes(n)) for n in (16, 20, 32, 64)}
        self.dig_hex = {n: [b.hex() for b in v] for n, v in self.dig.items()}
        self.dig_b64 = {n: [base64.b64encode(b).decode() for b in v] for n, v in self.dig.items()}
        self.ssha = many(lambda: "{SSHA}" + b64(20 + rng.choice((4, 8))))
        self.salt_utf8 = many(lambda: "".join(rng.choices(BCRYPT_ALPHA[2:], k=rng.choice((8, 12, 16)))))
        self.salt_hex = many(lambda: rng.randbytes(rng.choice((8, 16))).hex())
        self.salt_b64 = many(lambda: b64(rng.choice((12, 16))))
        self.totp = many(lambda: "".join(rng.choices(B32, k=32)))
        self.hex32 = many(lambda: "%032x" % rng.getrandbits(128))
        self.hmac_keys = ["legacy-pepper-%d" % i for i in range(8)]


class Generator:
    def __init__(self, seed: int, fmt: str, invalid_rate: float):
        self.rng = rng = random.Random(seed)
        self.p = Pools(random.Random(seed ^ 0x5EED))
        self.fmt = fmt
        self.export = fmt == "auth0-export"
        self.invalid_rate = invalid_rate
        self.invalid_kinds = EXPORT_INVALID_KINDS if self.export else INVALID_KINDS
        self.invalid_counts = {k: 0 for k in self.invalid_kinds}
        # Earlier valid emails/usernames, for deliberate duplicates: recent ones and a sparse
        # sample reaching back through the whole file.
        self.recent_emails: deque[str] = deque(maxlen=512)
        self.recent_usernames: deque[str] = deque(maxlen=512)
        self.old_emails: list[str] = []
        self.old_usernames: list[str] = []
        self.app_fields = [self._plan, self._roles, self._tenant, self._account_number,
                           self._credits, self._account, self._features, self._flags,
                           self._signup, self._legacy, self._billing, self._orgs]
        self.r = rng.random
        self.bits = rng.getrandbits
        self.ts_lo = 1420070400  # 2015-01-01
        self.ts_span = 9 * 365 * 86400

    # -- small helpers ------------------------------------------------------------------------
    def pick(self, seq):
        return seq[self.bits(16) % len(seq)]

    def two(self, a, b):
        x = self.bits(22)
        return a[x & 2047] + b[x >> 11]

    def one(self, a):
        return a[self.bits(11)]

    # -- app_metadata field generators: each returns (key, value) ---------------------------------
    def _plan(self):
        return "plan", self.pick(PLANS)

    def _roles(self):
        n = 1 + self.bits(2) % 3
        return "roles", self.rng.sample(ROLES, n)

    def _tenant(self):
        return "tenant_id", "tnt_%010x" % self.bits(40)

    def _account_number(self):
        return "account_number", 100000 + self.bits(24)

    def _credits(self):
        return "credits", round(self.r() * 500, 2)

    def _account(self):
        return "account", {"id": self.bits(31), "region": self.pick(REGIONS),
                           "created": "20%02d-%02d-%02d" % (15 + self.bits(3), 1 + self.bits(16) % 12,
                                                            1 + self.bits(16) % 28)}

    def _features(self):
        return "features", self.rng.sample(FEATURES, 1 + self.bits(2))

    def _flags(self):
        x = self.bits(3)
        return "flags", {"beta": bool(x & 1), "sso_required": bool(x & 2), "newsletter_opt_in": bool(x & 4)}

    def _signup(self):
        return "signup_source", self.pick(SOURCES)

    def _legacy(self):
        return "legacy", {"system": self.pick(LEGACY_SYSTEMS), "row_id": self.bits(32),
                          "migrated": False, "groups": ["g%d" % (self.bits(8)) for _ in range(1 + self.bits(1))]}

    def _billing(self):
        return "billing", {"customer_id": "cus_%012x" % self.bits(48), "currency": self.pick(CURRENCIES),
                           "seats": 1 + self.bits(16) % 50, "tax_exempt": self.r() < 0.1}

    def _orgs(self):
        return "org_ids", ["org_%08x" % self.bits(32) for _ in range(1 + self.bits(1))]

    # -- password hashes ------------------------------------------------------------------------
    def custom_hash(self, kind):
        p, r = self.p, self.r
        if kind == "bcrypt":
            prefix = "$2y$10$" if r() < 0.7 else ("$2y$12$" if r() < 0.5 else "$2a$11$")
            return {"algorithm": "bcrypt",
                    "hash": {"value": prefix + self.two(p.bcrypt_a, p.bcrypt_b), "encoding": "utf8"}}
        if kind == "argon2":
            v = "$argon2id$v=19$m=65536,t=2,p=1$%s$%s" % (self.one(p.salt16_b64), self.one(p.h32_b64))
            return {"algorithm": "argon2", "hash": {"value": v, "encoding": "utf8"}}
        if kind == "pbkdf2":
            if r() < 0.75:
                v = "$pbkdf2-sha512$i=100000,l=64$%s$%s" % (self.one(p.salt16_b64), self.one(p.h64_b64))
            else:
                v = "$pbkdf2-sha256$i=310000,l=32$%s$%s" % (self.one(p.salt16_b64), self.one(p.h32_b64))
            return {"algorithm": "pbkdf2", "hash": {"value": v, "encoding": "utf8"}}
        if kind in ("md5", "md4", "sha1", "sha256", "sha512"):
            n = {"md5": 16, "md4": 16, "sha1": 20, "sha256": 32, "sha512": 64}[kind]
            if r() < 0.6:
                h = {"value": self.one(p.dig_hex[n]), "encoding": "hex"}
            else:
                h = {"value": self.one(p.dig_b64[n]), "encoding": "base64"}
            out = {"algorithm": kind, "hash": h}
            if r() < 0.65:
                out["salt"] = self.salt()
            if kind == "md5" and r() < 0.2:
                out["password"] = {"encoding": "latin1"}
            return out
        if kind == "hmac":
            return {"algorithm": "hmac",
                    "hash": {"value": self.one(p.dig_hex[32]), "encoding": "hex", "digest": "sha256",
                             "key": {"value": self.pick(p.hmac_keys), "encoding": "utf8"}}}
        if kind == "scrypt":
            return {"algorithm": "scrypt", "hash": {"value": self.one(p.dig_b64[64]), "encoding": "base64"},
                    "salt": {"value": self.one(p.salt_utf8), "encoding": "utf8"},
                    "keylen": 64, "cost": 16384, "blockSize": 8, "parallelization": 1}
        if kind == "ldap":
            return {"algorithm": "ldap", "hash": {"value": self.one(p.ssha), "encoding": "utf8"}}
        raise ValueError(kind)

    def salt(self):
        x = self.bits(4)
        if x & 3 == 0:
            s = {"value": self.one(self.p.salt_hex), "encoding": "hex"}
        elif x & 3 == 1:
            s = {"value": self.one(self.p.salt_b64), "encoding": "base64"}
        else:
            s = {"value": self.one(self.p.salt_utf8), "encoding": "utf8"}
        s["position"] = "suffix" if x & 4 else "prefix"
        return s

    def password_hash(self):
        return "$2b$10$" + self.two(self.p.bcrypt_a, self.p.bcrypt_b)

    def mfa_factor(self, email_ascii):
        x = self.bits(3)
        if x < 4:
            return {"totp": {"secret": self.one(self.p.totp)}}
        if x < 7:
            return {"phone": {"value": self.phone()}}
        return {"email": {"value": email_ascii}}

    def phone(self):
        x = self.bits(12)
        k = x & 3
        if k == 0:
            return "+1555010%d%d" % (x >> 2 & 7, (x >> 5) % 10)        # +1 555-01xx (fictional)
        if k == 1:
            return "+447700900%03d" % ((x >> 2) % 1000)                 # Ofcom drama range
        if k == 2:
            return "+61491570%03d" % (156 + (x >> 2) % 4)               # ACMA fictional
        return "+3361%07d" % (self.bits(20) % 10000000)                 # looks French

    # -- one record -----------------------------------------------------------------------------
    def record(self, i: int):
        r, bits, pick = self.r, self.bits, self.pick
        culture = CULTURE_SLOTS[bits(16) % 100]
        _, givens, families, family_first, locales = CULTURES[culture]
        given, g_ascii = pick(givens)
        family, f_ascii = pick(families)

        x = bits(3)
        if x < 4:
            local = "%s.%s.%d" % (g_ascii, f_ascii, i)
        elif x < 6:
            local = "%s%s%d" % (g_ascii[0], f_ascii, i)
        elif x == 6:
            local = "%s_%s%d" % (f_ascii, g_ascii, i)
        else:
            local = "%s.%s+%s%d" % (g_ascii, f_ascii, pick(TAGS), i)
        email = local + "@" + pick(DOMAINS)

        rec = {}
        ids = None
        if self.export:
            created = self.ts_lo + bits(30) % self.ts_span
            ids = "%08x%06x%010x" % (created, bits(24), i)  # ObjectId-like; unique by index
            rec["user_id"] = "auth0|" + ids
        else:
            y = r()
            if y < 0.6:
                h = "%032x" % bits(128)
                rec["user_id"] = "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])
            elif y < 0.85:
                rec["user_id"] = "crm-%07d" % i
        rec["email"] = email
        rec["email_verified"] = r() < 0.8
        username = None
        if r() < 0.5:
            username = "%s_%s" % (g_ascii[:6], base36(i))  # unique by index, <= 15 chars, lower-case
            rec["username"] = username
        rec["given_name"] = given
        rec["family_name"] = family
        rec["name"] = (family + given) if family_first else (given + " " + family)
        y = r()
        if y < 0.08:
            rec["nickname"] = given + " " + pick(EMOJI) if bits(1) else pick(EMOJI) + " " + g_ascii
        elif y < 0.8:
            rec["nickname"] = g_ascii
        if r() < 0.85:
            if bits(1):
                rec["picture"] = "https://s.gravatar.com/avatar/%s?s=480&r=pg&d=identicon" % self.one(self.p.hex32)
            else:
                rec["picture"] = "https://cdn.legacy.example.com/avatars/%d/%s.png" % (i % 997, self.one(self.p.hex32)[:16])
        if r() < 0.08:
            # Unique per user, as in a real store (Auth0 matches users on phone); +999 is an
            # unassigned country code, so no number can reach a person.
            rec["phone_number"] = "+999%011d" % i
            rec["phone_verified"] = r() < 0.5
        if r() < 0.02:
            rec["blocked"] = True

        # metadata
        fields = self.rng.sample(self.app_fields, 2 + bits(16) % 7)
        rec["app_metadata"] = dict(f() for f in fields)
        um = {"locale": pick(locales)}
        if r() < 0.75:
            um["preferences"] = {"theme": pick(THEMES), "newsletter": r() < 0.4, "timezone": pick(TIMEZONES)}
        if r() < 0.3:
            city, country = pick(CITIES)
            um["address"] = {"city": city, "country": country}
        if r() < 0.25:
            um["bio"] = pick(BIOS)
        rec["user_metadata"] = um

        if self.export:
            last_login = created + bits(25)
            updated = last_login + bits(22)
            rec["created_at"] = iso(created, bits(10) % 1000)
            rec["updated_at"] = iso(updated, bits(10) % 1000)
            rec["last_login"] = iso(last_login, bits(10) % 1000)
            rec["logins_count"] = 1 + bits(9)
            if r() < 0.3:
                rec["last_ip"] = "%s.%d" % (pick(("192.0.2", "198.51.100", "203.0.113")), 1 + bits(8) % 254)
            rec["identities"] = [{"connection": "Username-Password-Authentication", "user_id": ids,
                                  "provider": "auth0", "isSocial": False}]
        else:
            kind = HASH_SLOTS[bits(16) % 100]
            if kind == "password_hash":
                rec["password_hash"] = self.password_hash()
            elif kind != "none":
                rec["custom_password_hash"] = self.custom_hash(kind)
            if r() < 0.15:
                rec["mfa_factors"] = [self.mfa_factor(email) for _ in range(1 + bits(16) % 3)]

        if self.invalid_rate and r() < self.invalid_rate:
            kind = self.mutate(rec, i)
            return rec, kind
        # remember valid identifiers for later deliberate duplicates
        self.recent_emails.append(email)
        if username:
            self.recent_usernames.append(username)
        if i % 997 == 0:
            remember(self.old_emails, email, bits)
            if username:
                remember(self.old_usernames, username, bits)
        return rec, None

    # -- invalid records ----------------------------------------------------------------------
    def earlier(self, recent, old):
        src = old if (old and (self.bits(1) or not recent)) else recent
        return self.pick(src) if src else None

    def mutate(self, rec, i):
        """Make rec invalid in one way; returns the kind used."""
        r, pick, p = self.r, self.pick, self.p
        kind = pick(self.invalid_kinds)
        if kind == "dup_email_case" and not (self.recent_emails or self.old_emails):
            kind = "missing_email"
        if kind == "dup_username" and not (self.recent_usernames or self.old_usernames):
            kind = "unknown_key"
        if kind == "missing_email":
            del rec["email"]
        elif kind == "bad_email":
            e = rec["email"]
            local, _, dom = e.partition("@")
            rec["email"] = pick([local + ".at." + dom, local + "@", local + "@@" + dom,
                                 local.replace(".", " ", 1) + " x@" + dom, "@" + dom])
        elif kind == "unknown_key":
            key = pick(["favourite_color", "legacy_password", "Email", "signup_ts", "lastLogin", "roles"])
            rec[key] = pick(["blue", "2018-02-03", True, 42, ["a", "b"]])
        elif kind == "both_hashes":
            rec["password_hash"] = self.password_hash()
            rec["custom_password_hash"] = self.custom_hash(pick(["md5", "sha256", "argon2", "bcrypt"]))
        elif kind == "argon2_salt":
            rec.pop("password_hash", None)
            h = self.custom_hash("argon2")
            h["salt"] = {"value": self.one(p.salt_utf8), "encoding": "utf8"}
            rec["custom_password_hash"] = h
        elif kind == "wrong_encoding":
            rec.pop("password_hash", None)
            alg, enc = pick([("argon2", "hex"), ("argon2", "base64"), ("pbkdf2", "base64"),
                             ("bcrypt", "hex"), ("ldap", "base64"), ("md5", "utf8"),
                             ("sha256", "utf8"), ("hmac", "utf8")])
            h = self.custom_hash(alg)
            h["hash"]["encoding"] = enc
            rec["custom_password_hash"] = h
        elif kind == "reserved_app_metadata":
            rec.setdefault("app_metadata", {})[pick(RESERVED_APP_METADATA)] = pick(
                ["legacy-%d" % i, True, 3, "2019-01-01T00:00:00Z"])
        elif kind == "mfa_too_many":
            rec["mfa_factors"] = [self.mfa_factor(rec["email"]) for _ in range(11)]
        elif kind == "totp_lowercase":
            f = {"totp": {"secret": self.one(p.totp).lower()}}
            rec.setdefault("mfa_factors", []).insert(0, f)
            del rec["mfa_factors"][10:]
        elif kind == "dup_email_case":
            e = self.earlier(self.recent_emails, self.old_emails)
            local, _, dom = e.partition("@")
            rec["email"] = pick([e.upper(), local.capitalize() + "@" + dom, local + "@" + dom.upper(),
                                 local.title() + "@" + dom])
        elif kind == "dup_username":
            rec["username"] = self.earlier(self.recent_usernames, self.old_usernames)
        elif kind == "email_verified_string":
            rec["email_verified"] = "true"
        self.invalid_counts[kind] += 1
        return kind


def remember(lst, item, bits, cap=4096):
    if len(lst) < cap:
        lst.append(item)
    else:
        lst[bits(12)] = item


def base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if n == 0:
        return "0"
    out = []
    while n:
        n, d = divmod(n, 36)
        out.append(digits[d])
    return "".join(reversed(out))


def iso(ts: int, ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".%03dZ" % ms


def parse_size(s: str) -> int:
    s = s.strip().upper().rstrip("B").rstrip("I")  # accept 100M, 100MB, 100MiB
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--users", type=int, help="number of records")
    g.add_argument("--bytes", type=parse_size, help="target uncompressed size, e.g. 100M, 1G")
    ap.add_argument("--out", required=True, help="output path ('-' for stdout)")
    ap.add_argument("--format", choices=["json", "ndjson", "auth0-export"], default="json")
    ap.add_argument("--gzip", action="store_true", help="gzip the output (level 6, reproducible)")
    ap.add_argument("--invalid-rate", type=float, default=0.0, help="fraction of invalid records (default 0)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--labels", help="write one NDJSON line per invalid record: {index, kind, email}")
    a = ap.parse_args(argv)
    if not 0.0 <= a.invalid_rate <= 1.0:
        ap.error("--invalid-rate must be within [0, 1]")
    if (a.users is not None and a.users < 0) or (a.bytes is not None and a.bytes < 0):
        ap.error("size must be >= 0")

    t0 = time.monotonic()
    gen = Generator(a.seed, a.format, a.invalid_rate)
    # One C-accelerated encoder for every record; ensure_ascii=False keeps names as UTF-8.
    encode = JSONEncoder(ensure_ascii=False, separators=((", ", ": ") if a.format == "json" else (",", ":"))).encode

    raw = sys.stdout.buffer if a.out == "-" else open(a.out, "wb")
    out = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0, filename="") if a.gzip else raw
    labels = open(a.labels, "w", encoding="utf-8") if a.labels else None

    is_array = a.format == "json"
    head = b"[\n" if is_array else b""
    sep = b",\n" if is_array else b"\n"
    tail = b"\n]\n" if is_array else b"\n"
    total = len(head)
    buf = [head]
    limit_users = a.users if a.users is not None else -1
    limit_bytes = (a.bytes - len(tail)) if a.bytes is not None else -1
    i = 0
    invalid = 0
    while True:
        if limit_users >= 0 and i >= limit_users:
            break
        if limit_bytes >= 0 and total >= limit_bytes:
            break
        rec, kind = gen.record(i)
        if kind:
            invalid += 1
            if labels:
                labels.write(encode({"index": i, "kind": kind, "email": rec.get("email")}) + "\n")
        line = encode(rec).encode("utf-8")
        if i:
            buf.append(sep)
            total += len(sep)
        buf.append(line)
        total += len(line)
        i += 1
        if len(buf) >= 4096:
            out.write(b"".join(buf))
            buf = []
    if i or is_array:
        buf.append(tail if (i or not is_array) else b"]\n")
        total += len(tail) if (i or not is_array) else 2
    out.write(b"".join(buf))
    if out is not raw:
        out.close()
    if raw is not sys.stdout.buffer:
        raw.close()
    else:
        raw.flush()
    if labels:
        labels.close()

    kinds = ",".join("%s=%d" % (k, v) for k, v in gen.invalid_counts.items() if v) or "-"
    print("gen_export: records=%d bytes=%d format=%s gzip=%s seed=%d invalid=%d (%s) avg_record=%d elapsed=%.1fs"
          % (i, total, a.format, "yes" if a.gzip else "no", a.seed, invalid, kinds,
             (total // i) if i else 0, time.monotonic() - t0), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
