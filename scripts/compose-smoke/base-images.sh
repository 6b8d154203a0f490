# Base images for docker/Dockerfile, sourced by scripts/compose-smoke.sh (needs $work, say).
# The registry images are used when they can be pulled. Otherwise local stand-ins are made:
#   local/debian:bookworm       debootstrap --variant=minbase from this machine's Debian mirror,
#                               plus the libraries .NET needs (ICU, OpenSSL, CA certificates)
#   local/dotnet-aspnet:10.0    that + this machine's .NET runtimes (Microsoft.NETCore.App and
#                               Microsoft.AspNetCore.App), laid out as in Microsoft's image
#   local/dotnet-sdk:10.0       that + this machine's whole .NET SDK, trusting this machine's CA
#                               certificates (NuGet restore through a TLS-inspecting gateway) and
#                               NUGET_CERT_REVOCATION_MODE=offline (revocation servers unreachable)
#   local/pytorch:2.10.0-cpu    stand-in for the PyTorch CUDA base: python3 with a `torch` package
#                               whose lib/ is libtorch 2.10.0 (CPU) from the libtorch-cpu-linux-x64
#                               NuGet package. Enough to build the gpu target; no CUDA in it.
# The rootfs is cached under $work/cache, so it is made once per run (or kept with APB_SMOKE_KEEP=1).

sdk_image=mcr.microsoft.com/dotnet/sdk:10.0
aspnet_image=mcr.microsoft.com/dotnet/aspnet:10.0
torch_image=pytorch/pytorch:2.10.0-cuda13.0-cudnn9-runtime

# True when the image is here or can be pulled (the registry answers quickly or not at all).
have_image() {
    docker image inspect "$1" >/dev/null 2>&1 && return 0
    timeout 120 docker pull -q "$1" >/dev/null 2>&1
}

debian_mirror() {
    local uri
    uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1)
    [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -1)
    echo "${uri:-http://deb.debian.org/debian}"
}

local_debian() {
    docker image inspect local/debian:bookworm >/dev/null 2>&1 && return 0
    local tarball=$work/cache/bookworm-rootfs.tar
    if [ ! -s "$tarball" ]; then
        say "debootstrap bookworm from $(debian_mirror)"
        rm -rf "$work/cache/rootfs"
        debootstrap --variant=minbase --include=ca-certificates,libicu72,libssl3,python3 \
            bookworm "$work/cache/rootfs" "$(debian_mirror)" >"$work/cache/debootstrap.log" 2>&1 \
            || { tail -20 "$work/cache/debootstrap.log"; return 1; }
        rm -rf "$work/cache/rootfs/var/cache/apt/archives/"*.deb "$work/cache/rootfs/var/lib/apt/lists/"*
        tar -C "$work/cache/rootfs" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
        rm -rf "$work/cache/rootfs"
    fi
    docker import "$tarball" local/debian:bookworm >/dev/null
}

# Copies (hard-links where it can) paths into a fresh build context folder.
context_with() {
    local ctx=$1; shift
    rm -rf "$ctx"; mkdir -p "$ctx"
    local p; for p in "$@"; do
        cp -al "$p" "$ctx/" 2>/dev/null || cp -a "$p" "$ctx/"
    done
}

local_dotnet() {
    local dotnet_root
    dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
    [ -d "$dotnet_root/shared/Microsoft.AspNetCore.App" ] || { say "no ASP.NET Core runtime in $dotnet_root"; return 1; }
    local env='ENV DOTNET_ROOT=/usr/share/dotnet DOTNET_RUNNING_IN_CONTAINER=true PATH=/usr/share/dotnet:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    context_with "$work/cache/aspnet" "$dotnet_root/dotnet" "$dotnet_root/host" "$dotnet_root/shared"
    printf 'FROM local/debian:bookworm\nCOPY . /usr/share/dotnet/\n%s\nRUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet\n' "$env" \
        | docker build -q -t local/dotnet-aspnet:10.0 -f - "$work/cache/aspnet" >/dev/null
    context_with "$work/cache/sdk" "$dotnet_root/sdk" "$dotnet_root/packs" "$dotnet_root/sdk-manifests" "$dotnet_root/templates"
    cp /etc/ssl/certs/ca-certificates.crt "$work/cache/sdk/ca-certificates.crt"
    printf 'FROM local/dotnet-aspnet:10.0\nCOPY . /usr/share/dotnet/\nRUN mv /usr/share/dotnet/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\nENV NUGET_CERT_REVOCATION_MODE=offline\n' \
        | docker build -q -t local/dotnet-sdk:10.0 -f - "$work/cache/sdk" >/dev/null
    rm -rf "$work/cache/aspnet" "$work/cache/sdk"
}

base_images() {
    if have_image "$sdk_image" && have_image "$aspnet_image"; then
        say "using $sdk_image and $aspnet_image from the registry"
        return 0
    fi
    say "registry not reachable: making local stand-ins"
    local_debian
    local_dotnet
    sdk_image=local/dotnet-sdk:10.0
    aspnet_image=local/dotnet-aspnet:10.0
    docker image ls 'local/*' --format '{{.Repository}}:{{.Tag}} {{.Size}}'
}

gpu_base_image() {
    if have_image "$torch_image"; then say "using $torch_image from the registry"; return 0; fi
    local native
    native=$(ls -d "${NUGET_PACKAGES:-$HOME/.nuget/packages}"/libtorch-cpu-linux-x64/2.10.0/runtimes/linux-x64/native 2>/dev/null | head -1)
    [ -n "$native" ] || { say "no libtorch-cpu-linux-x64 2.10.0 in the NuGet cache (restore the solution first)"; return 1; }
    say "registry not reachable: stand-in for $torch_image (libtorch 2.10.0 CPU from NuGet, no CUDA)"
    local_debian
    context_with "$work/cache/torch" "$native"
    mv "$work/cache/torch/native" "$work/cache/torch/lib"
    printf '%s\n' 'FROM local/debian:bookworm' \
        'COPY lib/ /usr/local/lib/python3.11/dist-packages/torch/lib/' \
        'RUN echo "__version__ = \"2.10.0+cpu (stand-in: libtorch from NuGet)\"" > /usr/local/lib/python3.11/dist-packages/torch/__init__.py' \
        | docker build -q -t local/pytorch:2.10.0-cpu -f - "$work/cache/torch" >/dev/null
    rm -rf "$work/cache/torch"
    torch_image=local/pytorch:2.10.0-cpu
}
