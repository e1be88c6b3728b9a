# bash completion for mtlctl(1).
#
# mtlctl answers for itself: `mtlctl __complete WORDS...` prints the
# candidates for the last word from the very tables it parses with, so this
# script never drifts from the installed binary. "__files__" asks for file
# names. Installed by `cmake --install` into bash-completion's directory.
_mtlctl()
{
    local cur=${COMP_WORDS[COMP_CWORD]} out IFS=$'\n'
    out=$("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return
    if [[ $out == __files__ ]]; then
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
        return
    fi
    COMPREPLY=($(compgen -W "$out" -- "$cur"))
}
complete -F _mtlctl mtlctl
