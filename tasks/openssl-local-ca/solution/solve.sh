#!/usr/bin/env bash
# Reference solution.
set -euo pipefail
umask 077
mkdir -p /app/pki
cd /app/pki
openssl req -x509 -newkey rsa:3072 -nodes -keyout ca.key -out ca.crt -days 3650 \
  -subj '/CN=Preft Internal CA' -addext 'basicConstraints=critical,CA:TRUE' \
  -addext 'keyUsage=critical,keyCertSign,cRLSign' 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out server.key
openssl req -new -key server.key -subj '/CN=api.internal.test' -out server.csr
cat >server.ext <<'EXT'
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:api.internal.test, DNS:localhost, IP:127.0.0.1
EXT
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
  -extfile server.ext -out server.crt 2>/dev/null
chmod 644 ca.crt server.crt
chmod 600 ca.key server.key
openssl verify -CAfile ca.crt server.crt
openssl dgst -sha256 -sign server.key -out /app/release/app-1.4.2.tar.sig /app/release/app-1.4.2.tar
