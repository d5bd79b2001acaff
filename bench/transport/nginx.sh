# nginx.sh - sourced by bench/20-transport.sh and bench/transport/prof.sh
# (from the repository root, with tmp, LUA and tag set): builds the plain
# libcurl loop into $tmp/c_loop, writes the bodies into $tmp/www (their
# sizes into $tmp/bodies.txt) and starts nginx from $tmp on a free loopback
# port, serving the three loads; waits until it accepts connections. Sets
# port, base and nginx_pid; the caller's cleanup stops nginx.
cc -O2 -o "$tmp/c_loop" bench/transport/c_loop.c $(pkg-config --cflags --libs libcurl)
mkdir -p "$tmp/www" "$tmp/logs"
$LUA bench/transport/gen_bodies.lua "$tmp/www" >"$tmp/bodies.txt"

port=$($LUA -e 'local s = assert(require("socket").bind("127.0.0.1", 0)); local _, p = s:getsockname(); print(p); s:close()')
cat > "$tmp/nginx.conf" <<CONF
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/logs/error.log warn;
events { worker_connections 512; }
http {
    access_log off;
    default_type application/json;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        root $tmp/www;
        location = /api/v2/workspaces/current { try_files /workspace.json =404; }
        location = /api/v2/campaigns { try_files /campaigns_\$http_x_bench_page.json /campaigns.json =404; }
        location = /api/v2/leads/add {
            client_max_body_size 16m;
            client_body_buffer_size 1m;
            return 200 '{"status":"success","total_sent":1000,"leads_uploaded":1000,"duplicated_leads":0,"skipped_count":0,"invalid_email_count":0}';
        }
    }
}
CONF
nginx -p "$tmp" -c "$tmp/nginx.conf" -g "daemon off;" 2>"$tmp/logs/stderr" &
nginx_pid=$!

base="http://127.0.0.1:$port"
ready=0
for _ in $(seq 1 50); do
    if $LUA -e "local c = require('socket').tcp(); c:settimeout(0.2); os.exit(c:connect('127.0.0.1', $port) and 0 or 1)" 2>/dev/null; then
        ready=1; break
    fi
    sleep 0.1
done
[ "$ready" = 1 ] || { echo "$tag: nginx did not start" >&2; cat "$tmp/logs/stderr" "$tmp/logs/error.log" >&2; exit 1; }
