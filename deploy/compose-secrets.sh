#!/bin/sh
# Writes the compose quick start's secrets into deploy/secrets/, one file each, keeping any that
# exist. The folder is readable by you alone; the files are world-readable inside it because
# compose mounts them as they are, and the containers run as uid 10001.
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
umask 022
new() { [ -s "secrets/$1" ] || { openssl rand -base64 32 | tr -d '=+/\n' > "secrets/$1"; echo "wrote secrets/$1"; }; }
new postgres-password
new secret-key
new marketplace-basic-key
new marketplace-kit-key
new smtp-password
if [ ! -s secrets/database-url ]; then
  printf 'postgresql://identity:%s@postgres:5432/identity' "$(cat secrets/postgres-password)" \
    > secrets/database-url
  echo "wrote secrets/database-url"
fi
if [ ! -s secrets/seller-private-key.pem ]; then
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out secrets/seller-private-key.pem 2>/dev/null
  chmod 644 secrets/seller-private-key.pem
  echo "wrote secrets/seller-private-key.pem"
fi
