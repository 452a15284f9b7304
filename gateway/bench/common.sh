# shellcheck shell=bash
# What proxy.sh and side_by_side.sh share: the gateway's route table and nginx's config.
# Sourced, not run.

# static_table FILE ROUTES UP_PORT: the benchmarked route among ROUTES others (cost is per
# depth anyway), every one proxied to the echo function on 127.0.0.1:UP_PORT.
static_table() {
  local file=$1 routes=$2 up=$3 i p
  {
    echo "routes:"
    echo "  - route:"
    echo "      metadata: { name: posts, namespace: default, creationTimestamp: \"2026-01-01T00:00:00Z\" }"
    echo "      spec: { path: \"/api/users/[id]/posts/[postId]\", image: unused }"
    echo "    backends: [\"http://127.0.0.1:$up\"]"
    for i in $(seq 1 $((routes - 1))); do
      case $((i % 4)) in
        0) p="/api/t$i/items" ;;
        1) p="/api/t$i/items/[id]" ;;
        2) p="/api/t$i/docs/[...slug]" ;;
        3) p="/api/t$i/shop/[[...path]]" ;;
      esac
      echo "  - route:"
      echo "      metadata: { name: r$i, namespace: default, creationTimestamp: \"2026-01-01T00:00:00Z\" }"
      echo "      spec: { path: \"$p\", image: unused }"
      echo "    backends: [\"http://127.0.0.1:$up\"]"
    done
  } >"$file"
}

# nginx_conf DIR PORT UP_PORT: DIR/nginx.conf for one worker listening on 127.0.0.1:PORT,
# keepalive to the upstream, the same forwarding headers the gateway adds.
nginx_conf() {
  local dir=$1 port=$2 up=$3
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
master_process on;
user root;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  upstream echo { server 127.0.0.1:$up; keepalive 64; }
  server {
    listen 127.0.0.1:$port;
    location /api/ {
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_set_header X-Request-Id \$request_id;
    }
  }
}
NGINX
}
