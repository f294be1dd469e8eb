#!/usr/bin/env python3
"""Fixtures for the legacy-source presets, made the way each system stores its users.

Writes into the directory given as the only argument one export per preset (supabase.csv,
django.csv, aspnet-identity.csv, cognito.csv, firebase.json, keycloak.json) and expect.json:
  {preset: {"file", "users_in", "passwords": {email: password}, "without_password": [email],
            "rejected": {email: code}}}
Every hash is computed here with hashlib (PBKDF2, ASP.NET Identity's byte layout, Keycloak's
credential JSON) or the bcrypt package: never by the code under test. Seeded, but for bcrypt's
salts (the bcrypt package draws its own).
The passwords are test fixtures' only.
"""

import base64
import csv
import gzip
import hashlib
import io
import json
import os
import random
import struct
import sys

import bcrypt

RNG = random.Random(19)


def rand_bytes(n):
    return bytes(RNG.randrange(256) for _ in range(n))


def rand_text(n, alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"):
    return "".join(RNG.choice(alphabet) for _ in range(n))


def password():
    # Non-ASCII and punctuation on purpose: the hash must be over the UTF-8 bytes.
    return rand_text(10) + RNG.choice(["é", "!", "ß", " ", "日本"])


def bcrypt_with_salt(pw, cost, prefix=b"2b"):
    salt = bcrypt.gensalt(rounds=cost, prefix=prefix)
    return bcrypt.hashpw(pw.encode(), salt).decode()


def supabase(expect):
    rows, passwords, without, rejected = [], {}, [], {}
    for i in range(6):
        email = "sb%d@example.com" % i
        pw = password()
        cost, prefix = [(10, b"2a"), (4, b"2b"), (5, b"2a")][i % 3]
        hashed = bcrypt_with_salt(pw, cost, prefix)
        passwords[email] = pw
        confirmed = "2024-01-0%d 10:00:00+00" % (i + 1) if i % 2 == 0 else ""
        meta = json.dumps({"full_name": "User, %d" % i, "locale": "fr"})
        rows.append([rand_uuid(), "authenticated", email.upper() if i == 1 else email, hashed, confirmed, meta, '{"provider":"email"}'])
    # An OAuth user: no password; a user whose hash was damaged: refused with the reason.
    rows.append([rand_uuid(), "authenticated", "oauth@example.com", "", "2024-02-01 00:00:00+00", "{}", '{"provider":"github"}'])
    without.append("oauth@example.com")
    rows.append([rand_uuid(), "authenticated", "broken@example.com", "$2a$10$tooshort", "", "{}", "{}"])
    rejected["broken@example.com"] = "PASSWORD_FORMAT"
    header = ["id", "aud", "email", "encrypted_password", "email_confirmed_at", "raw_user_meta_data", "raw_app_meta_data"]
    write_csv("supabase.csv", header, rows)
    expect["supabase"] = entry("supabase.csv", len(rows), passwords, without, rejected)


def rand_uuid():
    b = rand_bytes(16)
    h = b.hex()
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def django(expect):
    rows, passwords, without, rejected = [], {}, [], {}
    for i in range(5):
        email = "dj%d@example.com" % i
        pw = password()
        salt = rand_text(22)
        iterations = [1000, 1200, 870][i % 3]
        digest = "sha256" if i % 2 == 0 else "sha1"
        dk = hashlib.pbkdf2_hmac(digest, pw.encode(), salt.encode(), iterations)
        stored = "pbkdf2_%s$%d$%s$%s" % (digest, iterations, salt, base64.b64encode(dk).decode())
        passwords[email] = pw
        rows.append([i + 1, stored, "", "f", "user%d" % i, "First%d" % i, "Last%d" % i, email, "f", "t" if i != 3 else "f", "2020-01-01 00:00:00+00"])
    # Django's unusable password (set_unusable_password): refused, with what to do instead.
    rows.append([99, "!" + rand_text(40), "", "f", "social", "So", "Cial", "social@example.com", "f", "t", "2020-01-01 00:00:00+00"])
    rejected["social@example.com"] = "PASSWORD_FORMAT"
    header = ["id", "password", "last_login", "is_superuser", "username", "first_name", "last_name", "email", "is_staff", "is_active", "date_joined"]
    # psql's \copy ... csv header, gzipped as a dump often is.
    text = csv_text(header, rows)
    with open(out("django.csv.gz"), "wb") as f:
        f.write(gzip.compress(text.encode()))
    expect["django"] = entry("django.csv.gz", len(rows), passwords, without, rejected)


def aspnet(expect):
    rows, passwords, without, rejected = [], {}, [], {}
    for i in range(5):
        email = "Asp%d@Example.com" % i
        pw = password()
        salt = rand_bytes(16)
        prf, digest, iterations = [(1, "sha256", 10000), (2, "sha512", 1000), (0, "sha1", 1000)][i % 3]
        sub = hashlib.pbkdf2_hmac(digest, pw.encode(), salt, iterations, 32)
        v3 = b"\x01" + struct.pack(">III", prf, iterations, len(salt)) + salt + sub
        passwords[email.lower()] = pw
        rows.append([rand_uuid(), email, email.upper(), email, email.upper(), "True" if i % 2 == 0 else "False", base64.b64encode(v3).decode(), rand_text(32), rand_uuid(), "", "False", "False", "", "True", "0"])
    # A user who only signs in with an external login: no PasswordHash.
    rows.append([rand_uuid(), "ext@example.com", "EXT@EXAMPLE.COM", "ext@example.com", "EXT@EXAMPLE.COM", "True", "", rand_text(32), rand_uuid(), "", "False", "False", "", "True", "0"])
    without.append("ext@example.com")
    header = ["Id", "UserName", "NormalizedUserName", "Email", "NormalizedEmail", "EmailConfirmed", "PasswordHash", "SecurityStamp", "ConcurrencyStamp", "PhoneNumber", "PhoneNumberConfirmed", "TwoFactorEnabled", "LockoutEnd", "LockoutEnabled", "AccessFailedCount"]
    # SQL Server's tools write a BOM and CRLF.
    write_csv("aspnet-identity.csv", header, rows, bom=True)
    expect["aspnet-identity"] = entry("aspnet-identity.csv", len(rows), passwords, without, rejected)


def cognito(expect):
    header = ["name", "given_name", "family_name", "middle_name", "nickname", "preferred_username", "profile", "picture", "website", "email", "email_verified", "gender", "birthdate", "zoneinfo", "locale", "phone_number", "phone_number_verified", "address", "updated_at", "cognito:mfa_enabled", "cognito:username"]
    rows, without = [], []
    for i in range(4):
        email = "cg%d@example.com" % i
        without.append(email)
        rows.append(["Cog %d" % i, "Cog", "N%d" % i, "", "", "", "", "", "", email, "true" if i % 2 else "false", "", "", "", "en-GB", "+4470000000%02d" % i, "false", "", "", "false", "cg%d" % i])
    write_csv("cognito.csv", header, rows)
    expect["cognito"] = entry("cognito.csv", len(rows), {}, without, {})


def firebase(expect):
    users, without, rejected = [], [], {}
    for i in range(3):
        email = "fb%d@example.com" % i
        # Firebase's modified scrypt: the bytes are opaque here (its signer key is the project's).
        users.append({"localId": rand_text(28), "email": email, "emailVerified": i == 0, "passwordHash": base64.b64encode(rand_bytes(64)).decode(), "salt": base64.b64encode(rand_bytes(12)).decode(), "displayName": "Fire %d" % i, "createdAt": "1700000000000", "disabled": False, "providerUserInfo": []})
        rejected[email] = "PASSWORD_FORMAT"
    users.append({"localId": rand_text(28), "email": "google@example.com", "emailVerified": True, "displayName": "G", "customAttributes": "{\"role\": \"admin\"}", "providerUserInfo": [{"providerId": "google.com"}]})
    without.append("google@example.com")
    with open(out("firebase.json"), "w") as f:
        json.dump({"users": users}, f, indent=2)
    expect["firebase"] = entry("firebase.json", len(users), {}, without, rejected)


def keycloak(expect):
    users, passwords, without = [], {}, []
    for i, (algorithm, digest, length) in enumerate([("pbkdf2-sha256", "sha256", 64), ("pbkdf2-sha512", "sha512", 64), ("pbkdf2", "sha1", 20)]):
        email = "kc%d@example.com" % i
        pw = password()
        salt = rand_bytes(16)
        iterations = 1000 + i
        value = hashlib.pbkdf2_hmac(digest, pw.encode(), salt, iterations, length)
        passwords[email] = pw
        users.append({
            "id": rand_uuid(), "createdTimestamp": 1700000000000, "username": "kc%d" % i, "enabled": True,
            "emailVerified": i != 1, "firstName": "K%d" % i, "lastName": "C", "email": email,
            "attributes": {"locale": ["de"]},
            "credentials": [
                {"id": rand_uuid(), "type": "otp", "secretData": "{}", "credentialData": "{}"},
                {"id": rand_uuid(), "type": "password", "createdDate": 1700000000000,
                 "secretData": json.dumps({"value": base64.b64encode(value).decode(), "salt": base64.b64encode(salt).decode(), "additionalParameters": {}}),
                 "credentialData": json.dumps({"hashIterations": iterations, "algorithm": algorithm, "additionalParameters": {}})},
            ],
            "disableableCredentialTypes": [], "requiredActions": [], "realmRoles": ["default-roles-demo"], "notBefore": 0, "groups": [],
        })
    users.append({"id": rand_uuid(), "username": "idp", "enabled": True, "emailVerified": True, "email": "idp@example.com", "credentials": [], "federatedIdentities": [{"identityProvider": "google"}]})
    without.append("idp@example.com")
    with open(out("keycloak.json"), "w") as f:
        json.dump({"realm": "demo", "users": users}, f, indent=2)
    expect["keycloak"] = entry("keycloak.json", len(users), passwords, without, {})


def entry(file, users_in, passwords, without, rejected):
    return {"file": file, "users_in": users_in, "passwords": passwords, "without_password": without, "rejected": rejected}


def csv_text(header, rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def write_csv(name, header, rows, bom=False):
    with open(out(name), "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        w = csv.writer(f, lineterminator="\r\n" if bom else "\n")
        w.writerow(header)
        w.writerows(rows)


OUT = None


def out(name):
    return os.path.join(OUT, name)


def main():
    global OUT
    OUT = sys.argv[1]
    os.makedirs(OUT, exist_ok=True)
    expect = {}
    for gen in (supabase, django, aspnet, cognito, firebase, keycloak):
        gen(expect)
    with open(out("expect.json"), "w") as f:
        json.dump(expect, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
