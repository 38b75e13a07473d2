import sys

if __name__ == "__main__":  # worker processes import this module too (spawn) and must not run it
    try:  # the package imported torch already (lowrank/__init__.py has its own one line)
        from lowrank.cli import main
    except KeyboardInterrupt:
        print("interrupted while starting: nothing was done", file=sys.stderr)
        sys.exit(130)  # 128 + SIGINT, as the CLI's own Ctrl-C
    sys.exit(main())
