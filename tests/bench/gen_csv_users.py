#!/usr/bin/env python3
"""The same users as a CSV (for --mapping, bench_mapping.toml) and as Auth0's JSON array.

Usage: gen_csv_users.py USERS OUT_PREFIX  -> OUT_PREFIX.csv, OUT_PREFIX.json
The hashes are well-formed bcrypt strings of random bytes (no password behind them): the
benchmark measures reading, mapping and checking, not hashing.
"""
import csv
import json
import random
import sys

B64 = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def main():
    n, prefix = int(sys.argv[1]), sys.argv[2]
    rng = random.Random(7)
    with open(prefix + ".csv", "w", newline="") as c, open(prefix + ".json", "w") as j:
        w = csv.writer(c, lineterminator="\n")
        w.writerow(["email", "verified", "first", "last", "locale", "plan", "hash"])
        j.write("[\n")
        for i in range(n):
            first, last = "First%d" % i, "Last, %d" % (i % 977)
            h = "$2b$10$" + "".join(rng.choice(B64) for _ in range(53))
            email = "user%d@example.com" % i
            verified = i % 3 != 0
            w.writerow([email, "t" if verified else "f", first, last, "fr", "pro", h])
            user = {
                "email": email,
                "email_verified": verified,
                "given_name": first,
                "family_name": last,
                "name": first + " " + last,
                "user_metadata": {"locale": "fr"},
                "app_metadata": {"plan": "pro"},
                "password_hash": h,
            }
            j.write(("," if i else "") + json.dumps(user) + "\n")
        j.write("]\n")


if __name__ == "__main__":
    main()
