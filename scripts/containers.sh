# Sourced by scripts/test.sh (or by hand: `source scripts/containers.sh`):
# makes a container engine answer on the Docker Engine API and exports
# DOCKER_HOST and KILN_TEST_IMAGE for the container executor's tests.
#
# Podman with runc (see ../shared/services.md): installed with apt when
# missing, /etc/containers/containers.conf written once, the API served by
# `podman system service` on /tmp/kiln-podman.sock (started in the
# background when nothing answers there), and the test image made from
# busybox-static with `podman import` (no registry is needed). Idempotent:
# a second run finds everything in place in well under a second.
# A DOCKER_HOST that is already set is used as it is.

kiln_engine_answers() {
    python3 - "$1" <<'PY'
import socket, sys
path = sys.argv[1]
try:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    s.connect(path)
    s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
    ok = s.recv(64).split(b" ")[1] == b"200"
except Exception:
    ok = False
sys.exit(0 if ok else 1)
PY
}

kiln_containers_setup() {
    local sock=/tmp/kiln-podman.sock
    local image=localhost/kiln-busybox:latest
    if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1 \
        || [ ! -x /bin/busybox ]; then
        apt_install podman runc busybox-static
    fi
    local conf=/etc/containers/containers.conf
    if ! grep -qs '^runtime = "runc"' "$conf"; then
        mkdir -p /etc/containers
        cat >"$conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
CONF
    fi
    if [ -z "${DOCKER_HOST:-}" ]; then
        if ! kiln_engine_answers "$sock"; then
            rm -f "$sock"
            # From /: the service outlives this shell, and conmon fails
            # ("Failed to get working directory") once the directory it
            # was started in is removed.
            (cd / && setsid podman system service --time=0 "unix://$sock" \
                >/tmp/kiln-podman-service.log 2>&1 </dev/null &)
            local i
            for i in $(seq 1 100); do
                kiln_engine_answers "$sock" && break
                sleep 0.1
            done
            kiln_engine_answers "$sock" || {
                echo "podman system service did not answer on $sock; see /tmp/kiln-podman-service.log" >&2
                return 1
            }
        fi
        export DOCKER_HOST="unix://$sock"
    fi
    # The test image: busybox, /www/index.html, httpd on 8080 as its
    # command (a service), PATH=/bin.
    if ! podman image exists "$image"; then
        local root
        root=$(mktemp -d)
        mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/www"
        cp /bin/busybox "$root/bin/busybox"
        local applet
        for applet in $(/bin/busybox --list); do
            [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
        done
        echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
        echo 'root:x:0:' >"$root/etc/group"
        echo 'hello from kiln-web' >"$root/www/index.html"
        chmod 1777 "$root/tmp"
        tar -C "$root" -cf "$root.tar" .
        podman import -q \
            -c 'ENV PATH=/bin' \
            -c 'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]' \
            "$root.tar" "$image" >/dev/null
        rm -rf "$root" "$root.tar"
    fi
    export KILN_TEST_IMAGE="$image"
}
