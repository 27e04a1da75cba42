#!/bin/sh
# EC2 user data for an instance of a rollout environment (git app): before the app starts, check out
# the version the environment's last successful rollout deployed, which rollout publishes to SSM
# Parameter Store (the inventory's desired_version.parameter) after every deploy, rollback and
# recovery, as {"version": SHA, "run_id": ..., "ref": ..., "env": ...}. Without it (no rollout yet),
# the image's checkout is kept. See examples/boot/README.md for the instance role's permissions.
#
# Settings, as variables in the launch template's user data (before this script) or edited here:
ROLLOUT_PARAMETER=${ROLLOUT_PARAMETER:-/rollout/production/version}  # desired_version.parameter
APP_PATH=${APP_PATH:-/srv/app}                 # the app's git checkout, baked into the image
APP_USER=${APP_USER:-deploy}                   # who owns the checkout and runs the app
APP_START=${APP_START:-systemctl start app}    # starts the app, run after the checkout (as root)
set -eu

say() { echo "rollout-boot: $*"; }
APP_HOME=$(getent passwd "$APP_USER" | cut -d: -f6)
as_app() { runuser -u "$APP_USER" -- env HOME="$APP_HOME" "$@"; }

if ! value=$(aws ssm get-parameter --name "$ROLLOUT_PARAMETER" --query Parameter.Value --output text 2>/tmp/rollout-boot.err); then
    if grep -q ParameterNotFound /tmp/rollout-boot.err; then
        say "$ROLLOUT_PARAMETER does not exist yet: keeping the image's version"
        value=""
    else
        say "cannot read $ROLLOUT_PARAMETER: $(tail -n 1 /tmp/rollout-boot.err)"; exit 1
    fi
fi
version=$(printf '%s' "$value" | sed -n 's/.*"version": *"\([0-9a-f]\{40\}\)".*/\1/p')
if [ -n "$value" ] && [ -z "$version" ]; then
    say "$ROLLOUT_PARAMETER holds no commit SHA: $value"; exit 1
fi
if [ -n "$version" ]; then
    as_app git -C "$APP_PATH" cat-file -e "$version^{commit}" 2>/dev/null || as_app git -C "$APP_PATH" fetch -q origin "$version" \
        || as_app git -C "$APP_PATH" fetch -q --tags origin
    as_app git -C "$APP_PATH" checkout -q --force --detach "$version"
    test "$(as_app git -C "$APP_PATH" rev-parse HEAD)" = "$version"
    say "checked out $version ($ROLLOUT_PARAMETER)"
fi
sh -c "$APP_START"
say "started the app"
