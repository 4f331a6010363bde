"""Shell completion and the man page, generated from the argparse tree (``tierctl.cli.build_parser()``),
so neither can fall behind a new command or flag.

- ``command_tree(parser)``: every command path ("", "sim", "profile check" ...) with its visible options
  (``help=argparse.SUPPRESS`` ones stay hidden), positionals and subcommands.
- ``bash_completion(tree)``: a ``complete -F`` function; subcommands, options, and the values of options
  with ``choices``; anything else falls back to file names (``-o default``).
- ``zsh_completion(tree)``: the same function through zsh's bash layer (``bashcompinit``).
- ``manpage(parser)``: troff, section 8: every command with its options and help text, the exit codes
  (the table of ``tierctl.errors``), FILES and ENVIRONMENT.
"""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass

from tierctl import __version__, errors

# what the man page's FILES section lists: the paths of the unit and the daemon's defaults
FILES = (
    ("/etc/tierctl/profiles", "the profiles the daemon runs with under the systemd unit (*.toml)"),
    ("/run/tierctl/tierctl.sock", "the daemon's API socket (override: --socket, $TIERCTL_SOCKET)"),
    (
        "/var/lib/tierctl",
        "the daemon's state (--state-dir): overrides.json (pins, quotas, pause) and knobs.json "
        "(original values of the kernel knobs it changed, restored at stop or at the next start)",
    ),
    (
        "/run/tierctl/bpf-knobs.PID.json",
        "knobs changed by a one-shot command's BPF sampler (tierctl sample), restored by the next tierctl "
        "that starts a BPF sampler once PID is gone",
    ),
)
ENVIRONMENT = (
    ("TIERCTL_SOCKET", "the daemon's socket, for the daemon and its clients"),
    ("TIERCTL_DEBUG", "when set, an internal error prints its traceback"),
)
_WORD = re.compile(r"^[A-Za-z0-9_.,:+/=@%^-]+$")  # safe unquoted in a completion word list


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]  # "-n", "--limit"; empty for a positional
    metavar: str  # what the value is called ("" when the option takes none)
    help: str
    choices: tuple[str, ...]


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]  # () for tierctl itself
    help: str  # the one-line help in the parent's command list
    description: str
    options: tuple[Option, ...]
    positionals: tuple[Option, ...]
    subcommands: tuple[str, ...]

    @property
    def name(self) -> str:
        return " ".join(("tierctl", *self.path))


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help:
        return ""
    text = parser._get_formatter()._expand_help(action)
    return " ".join(text.split())


def _metavar(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if isinstance(action.metavar, str):
        return action.metavar
    if action.choices is not None:
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return action.dest.upper() if action.option_strings else action.dest


def command_tree(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = (), help_: str = ""
) -> list[Command]:
    """``parser`` and every subcommand below it, parents first."""
    options: list[Option] = []
    positionals: list[Option] = []
    children: list[tuple[str, str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            children += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
            continue
        if action.help == argparse.SUPPRESS:
            continue
        choices = tuple(str(c) for c in action.choices) if action.choices is not None else ()
        opt = Option(tuple(action.option_strings), _metavar(action), _help(parser, action), choices)
        (options if action.option_strings else positionals).append(opt)
    here = Command(
        path,
        help_,
        " ".join((parser.description or "").split()),
        tuple(options),
        tuple(positionals),
        tuple(name for name, _, _ in children),
    )
    out = [here]
    for name, child_help, sub in children:
        out += command_tree(sub, (*path, name), " ".join(child_help.split()))
    return out


# ------------------------------------------------------------------------------------ completion
def _words(items: list[str]) -> str:
    return shlex.quote(" ".join(w for w in items if _WORD.match(w)))


def _completion_functions(tree: list[Command]) -> str:
    spec = []
    values = []
    for c in tree:
        path = shlex.quote(" ".join(c.path))
        opts = [f for o in c.options for f in o.flags]
        vals = [f for o in c.options if o.metavar for f in o.flags]
        args = [a for o in c.positionals for a in o.choices]
        spec.append(
            f"        {path}) cmds={_words(list(c.subcommands))}; args={_words(args)}; opts={_words(opts)}; "
            f"vals={_words(vals)} ;;"
        )
        for o in c.options:
            if o.choices:
                keys = "|".join(shlex.quote(" ".join(c.path) + "|" + f) for f in o.flags)
                values.append(f"        {keys}) words={_words(list(o.choices))} ;;")
    return "\n".join(
        [
            "# tierctl completion, generated by `tierctl completion` from tierctl's argument parser",
            f"# (tierctl {__version__}). Values of options without a fixed set complete as file names.",
            "_tierctl_spec() {",
            '    # $1: a command path ("", "profile check" ...); sets cmds (subcommands), args (values',
            "    # of its positionals, if a fixed set), opts and vals (the options that take a value)",
            '    case "$1" in',
            *spec,
            "        *) cmds=''; args=''; opts=''; vals='' ;;",
            "    esac",
            "}",
            "_tierctl_choices() {",
            '    # $1: "command path|option"; sets words to the values the option accepts, if a fixed set',
            '    case "$1" in',
            *values,
            "        *) words='' ;;",
            "    esac",
            "}",
            "_tierctl() {",
            '    [ -n "${ZSH_VERSION-}" ] && setopt local_options ksh_arrays  # 0-based arrays, as in bash',
            "    local cur cmdpath='' cmds args opts vals words i w IFS=$'\\n'",
            '    cur="${COMP_WORDS[COMP_CWORD]}"',
            "    COMPREPLY=()",
            '    _tierctl_spec ""',
            "    i=1",
            '    while [ "$i" -lt "$COMP_CWORD" ]; do',
            '        w="${COMP_WORDS[i]}"',
            '        if [[ " $vals " == *" $w "* ]]; then',
            "            i=$((i + 1))  # the option's value",
            '        elif [[ "$w" != -* && " $cmds " == *" $w "* ]]; then',
            '            cmdpath="${cmdpath:+$cmdpath }$w"',
            '            _tierctl_spec "$cmdpath"',
            "        fi",
            "        i=$((i + 1))",
            "    done",
            '    w="${COMP_WORDS[COMP_CWORD-1]}"',
            '    if [[ "$cur" != -* && " $vals " == *" $w "* ]]; then',
            '        _tierctl_choices "$cmdpath|$w"',
            '        [ -n "$words" ] && COMPREPLY=($(IFS=" "; compgen -W "$words" -- "$cur"))',
            "        return 0",
            "    fi",
            '    if [[ "$cur" == -* ]]; then',
            '        COMPREPLY=($(IFS=" "; compgen -W "$opts" -- "$cur"))',
            "    else",
            '        COMPREPLY=($(IFS=" "; compgen -W "$cmds $args" -- "$cur"))',
            "    fi",
            "    return 0",
            "}",
            "complete -o bashdefault -o default -F _tierctl tierctl",
            "",
        ]
    )


def bash_completion(tree: list[Command]) -> str:
    """For /usr/share/bash-completion/completions/tierctl, or ``source <(tierctl completion bash)``."""
    return _completion_functions(tree)


def zsh_completion(tree: list[Command]) -> str:
    """For ``source <(tierctl completion zsh)`` in ~/.zshrc, after compinit."""
    return (
        "# zsh: tierctl's bash completion through zsh's bash layer; source it after compinit\n"
        "autoload -U +X bashcompinit && bashcompinit\n" + _completion_functions(tree)
    )


# -------------------------------------------------------------------------------------- man page
def _roff(text: str) -> str:
    """Text for a troff line: backslashes escaped, hyphens literal, no line starting a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


def _roff_option(o: Option) -> str:
    flags = ", ".join(f"\\fB{_roff(f)}\\fR" for f in o.flags)
    if not o.metavar:
        return flags
    return f"{flags} \\fI{_roff(o.metavar)}\\fR" if o.flags else f"\\fI{_roff(o.metavar)}\\fR"


def exit_codes() -> list[tuple[int, str]]:
    """The table in the docstring of ``tierctl.errors``: (code, meaning), in order."""
    rows = re.findall(r"^(\d+)\s{2,}(.+)$", errors.__doc__ or "", flags=re.M)
    return [(int(code), " ".join(text.replace("``", "").split())) for code, text in rows]


def manpage(parser: argparse.ArgumentParser) -> str:
    tree = command_tree(parser)
    summary = tree[0].description.rstrip(".") or "tiered-memory placement controller"
    out = [
        f'.TH TIERCTL 8 "" "tierctl {__version__}" "System Administration"',
        ".nh",
        ".ad l",
        ".SH NAME",
        f"tierctl \\- {_roff(summary[:1].lower() + summary[1:])}",
        ".SH SYNOPSIS",
        ".B tierctl\n[\\fB\\-\\-version\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
        ".SH DESCRIPTION",
        _roff(
            "tierctl samples page hotness per cgroup, decides promotions and demotions between the fast "
            "and the slow memory tier under per-workload profiles, and moves pages. tierctl daemon runs "
            "the controller (under systemd: see tierctl unit); the other commands inspect the machine, "
            "talk to the daemon or run the simulator. tierctl COMMAND --help shows the same options "
            "as this page."
        ),
        ".SH COMMANDS",
    ]
    for c in tree[1:]:
        out.append(f'.SS "{_roff(c.name)}"')
        out.append(_roff(c.description or c.help))
        if c.subcommands:
            out.append(".PP\n" + _roff("Subcommands: " + ", ".join(c.subcommands) + "."))
        for o in (*c.positionals, *c.options):
            out += [".TP", _roff_option(o), _roff(o.help) if o.help else "\\&"]
    out.append(".SH EXIT STATUS")
    for code, text in exit_codes():
        out += [".TP", str(code), _roff(text)]
    out.append(".SH FILES")
    for path, text in FILES:
        out += [".TP", f"\\fI{_roff(path)}\\fR", _roff(text)]
    out.append(".SH ENVIRONMENT")
    for name, text in ENVIRONMENT:
        out += [".TP", f"\\fB{name}\\fR", _roff(text)]
    out += [".SH SEE ALSO", "\\fBsystemctl\\fR(1), \\fBsystemd.exec\\fR(5), \\fBmove_pages\\fR(2)", ""]
    return "\n".join(out)
