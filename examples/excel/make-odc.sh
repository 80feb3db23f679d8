#!/usr/bin/env bash
# Writes one Office Data Connection file (.odc) per cube in cube-definitions/ into this folder
# (or -o DIR): FLIS-<Cube>.odc, opened by double-click in Excel.
#
#   make-odc.sh                                      # https://localhost:8443/xmla, as shipped
#   make-odc.sh https://datakube.kommune.dk/xmla     # another host
#   make-odc.sh -u USER -l 1033 -o /tmp/odc URL      # fill in a user name, English, elsewhere
#
# Options:
#   -o DIR   output folder (default: the folder of this script)
#   -u USER  user name written into the connection string (default: empty; Excel asks)
#   -l LCID  Locale Identifier: 1030 Danish captions and number format (default), 1033 English
#   -c DIR   cube definitions (default: cube-definitions/ in the repository)
#
# The cube and catalog names are read from the YAML files with a plain text scan (`cube:` then
# its `name:`, `catalog:` then its `name:`), so a new cube only needs a rerun. No password is
# ever written: Excel asks for it when the connection is opened.
set -euo pipefail
export LC_ALL=C

here="$(cd "$(dirname "$0")" && pwd)"
out="$here"
user=""
lcid=1030
defs="$here/../../cube-definitions"
# Integrated Security=Basic: MSOLAP sends the user name and password the user types as HTTP
# Basic credentials (the documented values are blank, SSPI and Basic).
integrated_security="${ODC_INTEGRATED_SECURITY:-Basic}"

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "o:u:l:c:h" opt; do
    case "$opt" in
        o) out="$OPTARG" ;;
        u) user="$OPTARG" ;;
        l) lcid="$OPTARG" ;;
        c) defs="$OPTARG" ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -le 1 ] || usage
url="${1:-https://localhost:8443/xmla}"

case "$url" in
    https://*/xmla) ;;
    *) echo "make-odc.sh: the server URL must look like https://HOST[:PORT]/xmla (got '$url')" >&2; exit 2 ;;
esac
case "$lcid" in
    '' | *[!0-9]*) echo "make-odc.sh: -l takes a number such as 1030 or 1033" >&2; exit 2 ;;
esac
case "$user$url" in
    *';'* | *'"'*) echo "make-odc.sh: ';' and '\"' cannot be part of a connection string value" >&2; exit 2 ;;
esac
[ -d "$defs" ] || { echo "make-odc.sh: no cube definitions in $defs" >&2; exit 2; }
mkdir -p "$out"

# XML and HTML escaping for text and attribute values.
esc() {
    local s="$1"
    s="${s//&/&amp;}"
    s="${s//</&lt;}"
    s="${s//>/&gt;}"
    s="${s//\"/&quot;}"
    printf '%s' "$s"
}

# Danish letters folded to ASCII for the file name: Økonomi -> Okonomi, Beskæftigelse -> Beskaeftigelse.
ascii_name() {
    printf '%s' "$1" | sed -e 's/Æ/Ae/g; s/æ/ae/g; s/Ø/O/g; s/ø/o/g; s/Å/Aa/g; s/å/aa/g'
}

# Prints "name<TAB>description da<TAB>description en" for the top-level block KEY (cube or
# catalog) of a YAML file. Only the plain `key: value` layout of cube-definitions/ is read.
scan() {
    awk -v key="$1" -v q="'" '
        function val(line) {
            sub(/^[^:]*:[ \t]*/, "", line)
            sub(/[ \t]+#.*$/, "", line)
            if (line ~ /^".*"$/ || line ~ ("^" q ".*" q "$")) line = substr(line, 2, length(line) - 2)
            return line
        }
        $0 ~ "^" key ":[ \t]*$" { inblock = 1; next }
        inblock && /^[^ \t#]/ { inblock = 0 }
        !inblock { next }
        /^  [a-z_]+:/ { indesc = ($0 ~ /^  description:[ \t]*$/) }
        /^  name:/ && name == "" { name = val($0) }
        indesc && /^    da:/ { da = val($0) }
        indesc && /^    en:/ { en = val($0) }
        END { if (name != "") printf "%s\t%s\t%s\n", name, da, en }
    ' "$2"
}

catalog=""
for f in "$defs"/*.yaml; do
    line="$(scan catalog "$f")"
    [ -n "$line" ] && catalog="${line%%$'\t'*}"
done
[ -n "$catalog" ] || { echo "make-odc.sh: no 'catalog:' with a 'name:' in $defs" >&2; exit 1; }

connection="Provider=MSOLAP.8;Integrated Security=$integrated_security;Persist Security Info=True;User ID=$user;Data Source=$url;Initial Catalog=$catalog;Locale Identifier=$lcid"

count=0
for f in "$defs"/*.yaml; do
    line="$(scan cube "$f")"
    [ -n "$line" ] || continue
    IFS=$'\t' read -r cube da en <<<"$line"
    file="$out/$catalog-$(ascii_name "$cube").odc"
    title="$catalog – $cube"
    {
        cat <<EOF
<html xmlns:o="urn:schemas-microsoft-com:office:office"
xmlns="http://www.w3.org/TR/REC-html40">

<head>
<meta http-equiv=Content-Type content="text/x-ms-odc; charset=utf-8">
<meta name=ProgId content=ODC.Cube>
<meta name=SourceType content=OLEDB>
<meta name=Catalog content="$(esc "$catalog")">
<meta name=Table content="$(esc "$cube")">
<title>$(esc "$title")</title>
<xml id=docprops><o:DocumentProperties
  xmlns:o="urn:schemas-microsoft-com:office:office"
  xmlns="http://www.w3.org/TR/REC-html40">
  <o:Name>$(esc "$title")</o:Name>
  <o:Description>$(esc "$da") / $(esc "$en")</o:Description>
  <o:Keywords>datakube; $(esc "$catalog"); $(esc "$cube")</o:Keywords>
 </o:DocumentProperties>
</xml><xml id=msodc><odc:OfficeDataConnection
  xmlns:odc="urn:schemas-microsoft-com:office:odc"
  xmlns="http://www.w3.org/TR/REC-html40">
  <odc:Connection odc:Type="OLEDB">
   <odc:ConnectionString>$(esc "$connection")</odc:ConnectionString>
   <odc:CommandType>Cube</odc:CommandType>
   <odc:CommandText>$(esc "$cube")</odc:CommandText>
  </odc:Connection>
 </odc:OfficeDataConnection>
</xml>
</head>

<body>
<h1>$(esc "$title")</h1>
<p>$(esc "$da")</p>
<p lang=en>$(esc "$en")</p>
<p>Åbn filen i Excel (dobbeltklik), og log på med dit brugernavn og din adgangskode.<br>
<span lang=en>Open this file in Excel (double-click) and log on with your user name and password.</span></p>
<p>Server: <code>$(esc "$url")</code> · Katalog/catalog: <code>$(esc "$catalog")</code> · Kube/cube: <code>$(esc "$cube")</code></p>
</body>

</html>
EOF
    } >"$file.tmp"
    mv "$file.tmp" "$file"
    echo "wrote $file" >&2
    count=$((count + 1))
done
[ "$count" -gt 0 ] || { echo "make-odc.sh: no 'cube:' with a 'name:' in $defs" >&2; exit 1; }
