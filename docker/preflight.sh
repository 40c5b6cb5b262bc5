#!/bin/sh
# The compose stack's first service: refuses to let anything start while a setting still holds a
# `change-me` placeholder from .env.example. Every other service waits for it to succeed, the
# database included, whose passwords are fixed when its volume is created. docker-compose.yaml
# hands this service every .env setting; it prints their names, never their values.
set -eu

placeholders=""
# names only from `env`; a value with a newline cannot fake one, since each name is looked up again
for name in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' | sort -u); do
  eval "value=\${$name-}"
  case $value in
    *change-me*) placeholders="$placeholders${placeholders:+, }$name" ;;
  esac
done

if [ -n "$placeholders" ]; then
  echo "error: .env: $placeholders still set to a change-me placeholder; replace each value (see .env.example)" >&2
  exit 1
fi
echo "preflight: no change-me placeholder left"
