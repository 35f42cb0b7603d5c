#!/bin/sh
exec buck2 run //app/cli:cli -- "$@"
