#!/bin/sh
# In the nginx container of docker-compose.yml (mounted into /docker-entrypoint.d/, run
# by the image's entrypoint before nginx starts): writes the server blocks that
# nginx/docker.conf includes, from the same files the local stack renders.
# With a certificate and key mounted (PUSH_TLS_CERT, PUSH_TLS_KEY): HTTPS with HTTP/2
# on 8443, plain HTTP on 8080 redirecting there; without them plain HTTP on 8080.
set -eu
src=/etc/nginx/pushbox
out=/etc/nginx/pushbox-servers.conf
if [ -s /etc/nginx/tls/cert.pem ] && [ -s /etc/nginx/tls/key.pem ]; then
  template=$src/pushbox-servers-tls.conf
  echo "pushbox: HTTPS on 8443 (published as ${PUSH_NGINX_TLS_PORT:-8443}), HTTP redirects"
else
  template=$src/pushbox-servers.conf
  echo "pushbox: plain HTTP on 8080 (no certificate mounted)"
fi
sed -e "s|@LISTEN@|8080|" \
    -e "s|@LISTEN_TLS@|8443|" \
    -e "s|@TLS_PORT@|${PUSH_NGINX_TLS_PORT:-8443}|" \
    -e "s|@TLS_CERT@|/etc/nginx/tls/cert.pem|" \
    -e "s|@TLS_KEY@|/etc/nginx/tls/key.pem|" \
    -e "s|@NGINX_DIR@|$src|" \
    "$template" > "$out"
