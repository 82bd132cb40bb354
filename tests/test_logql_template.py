"""Go text/template semantics of LogQL ``line_format`` and ``label_format``.

Every expected value in the tables below was produced by Go itself: a
harness running Go's ``text/template`` (``missingkey=zero``) with Loki's
function map (sprig 3.2.3, go-humanize, Loki's own helpers from
``pkg/logql/log/fmt.go``) over the same labels, line and timestamp, its
outputs and error messages copied verbatim. The tests then check the
properties Go does not cover: error positions, the label set a template
reads, thread safety, and that arbitrary text only ever fails with
:class:`QueryError` at parse time and :class:`TemplateError` at run time.
"""

# Golden tables read best one case per line, however long the Go output.
# ruff: noqa: E501

from __future__ import annotations

import threading
import time
import types

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chunkstore.errors import ChunkstoreError, QueryError
from chunkstore.logql.template import Template, TemplateError

LABELS = {
    "foo": "blip", "bar": "blop", "path": "/a/b c", "status": "200", "n": "42", "f": "3.5",
    "empty": "", "uni": "héllo wörld", "err": "ErrTimeout happened", "cluster": "prod-cluster",
    "json": '{"a": {"b": [1, 2.5, "x", null, true]}, "s": "str"}',
    "ts": "2023-03-10T01:32:40.340485723Z", "epoch": "1679577215", "size": "3 kB", "dur": "3m10s",
    "b64": "aSdtIGEgc3RyaW5nLCBlbmNvZGUgbWUh", "url": "a b&c=é/~",
}
LINE = "Line with Ünïcode"
TS = 1656353124120000000  # 2022-06-27T18:05:24.12Z, the timestamp of Loki's own tests


def render(text: str, labels=LABELS, line: str = LINE, ts: int = TS) -> str:
    return Template(text).execute(labels, line, ts)


# Every example of Loki's "LogQL template functions" page (the page says minf 1 2.5 3
# prints 1.5; Loki prints 1).
DOCS_EXAMPLES = [
    ('{{ .path | replace " " "_" | trunc 5 | upper }}', '/A/B_'),
    ('{{ if and (contains "he" "hello") (contains "llo" "hello") }} yes {{end}}', ' yes '),
    ('{{ if contains .err "ErrTimeout" }} timeout {{else if contains "he" "hello"}} yes {{else}} no {{end}}', ' yes '),
    ('{{ .path }}', '/a/b c'),
    ('{{ __line__ | lower }}', 'line with ünïcode'),
    ('{{ __line__ }}', 'Line with Ünïcode'),
    ('{{ __timestamp__ }}', '2022-06-27 18:05:24.12 +0000 UTC'),
    ('{{ __timestamp__ | date "2006-01-02T15:04:05.00Z-07:00" }}', '2022-06-27T18:05:24.12Z+00:00'),
    ('{{ __timestamp__ | unixEpoch }}', '1656353124'),
    ('{{ .dur | duration }}', '190'),
    ('{{ duration .dur }}', '190'),
    ('{{ .dur | duration_seconds }}', '190'),
    ('{{ duration_seconds "1.5h" }}', '5400'),
    ('{{ toDate "2006-01-02" "2021-11-02" }}', '2021-11-02 00:00:00 +0000 UTC'),
    ('{{ .ts | toDate "2006-01-02T15:04:05.999999999Z" }}', '2023-03-10 01:32:40.340485723 +0000 UTC'),
    ('{{ toDateInZone "2006-01-02" "UTC" "2021-11-02" }}', '2021-11-02 00:00:00 +0000 UTC'),
    ('{{ .ts | toDateInZone "2006-01-02T15:04:05.999999999Z" "UTC" }}', '2023-03-10 01:32:40.340485723 +0000 UTC'),
    ('{{ .ts | toDateInZone "2006-01-02T15:04:05.999999999Z" "UTC" | unixEpoch }}', '1678411960'),
    ('{{ .ts | toDateInZone "2006-01-02T15:04:05.999999999Z" "UTC" | unixEpochMillis }}', '1678411960340'),
    ('{{ .ts | toDateInZone "2006-01-02T15:04:05.999999999Z" "UTC" | unixEpochNanos }}', '1678411960340485723'),
    ('from="{{date "2006-01-02" (unixToTime .epoch)}}"', 'from="2023-03-23"'),
    ('{{ alignLeft 5 "hello world"}}', 'hello'),
    ('{{ alignLeft 5 "hi"}}', 'hi   '),
    ('{{ alignRight 5 "hello world"}}', 'world'),
    ('{{ alignRight 5 "hi"}}', '   hi'),
    ('{{ .foo | b64enc }}', 'YmxpcA=='),
    ('{{ b64enc  .foo }}', 'YmxpcA=='),
    ('{{ .b64 | b64dec }}', "i'm a string, encode me!"),
    ('{{ b64dec .b64 }}', "i'm a string, encode me!"),
    ('{{ .size | bytes }}', '3000'),
    ('{{ bytes "3MB" }}', '3e+06'),
    ('{{ bytes "1.5 GiB" }}', '1.610612736e+09'),
    ('{{ default "-" "" }}', '-'),
    ('{{ default "-" "foo" }}', 'foo'),
    ('{{ .missing | default "-" }}', '-'),
    ('{{ .empty | default "-" }}', '-'),
    ('{{fromJson "{\\"foo\\": 55}"}}', 'map[foo:55]'),
    ('{{ range $q := fromJson "[{\\"query\\": \\"a\\"}, {\\"query\\": \\"b\\"}]" }} {{ $q.query }} {{ end }}', ' a  b '),
    ('{{ .status | lower }}', '200'),
    ('{{ lower  "HELLO"}}', 'hello'),
    ('{{ indent 4 "a\\nb" }}', '    a\n    b'),
    ('{{ nindent 4 "a\\nb" }}', '\n    a\n    b'),
    ('{{ repeat 3 "hello" }}', 'hellohellohello'),
    ('{{ printf "The IP address was %s" .n }}', 'The IP address was 42'),
    ('{{ printf "%-40.40s" .path}} {{printf "%-5.5s" .foo}}', '/a/b c                                   blip '),
    ('"|" {{printf "%15.15s" .cluster}} "|"', '"|"    prod-cluster "|"'),
    ('{{ .cluster | replace "-cluster" "" }}', 'prod'),
    ('{{ replace "hello" "world" "hello world" }}', 'world world'),
    ('{{ .path | substr 2 5 }}', '/b '),
    ('{{ substr 0 5 "hello world"}}', 'hello'),
    ('{{ substr 6 11 "hello world"}}', 'world'),
    ('{{.status | title}}', '200'),
    ('{{ title "hello world"}}', 'Hello World'),
    ('{{ .path | trim }}', '/a/b c'),
    ('{{ trim "   hello    " }}', 'hello'),
    ('{{ .path | trimAll "/" }}', 'a/b c'),
    ('{{ trimAll "$" "$5.00" }}', '5.00'),
    ('{{ .path | trimPrefix "/" }}', 'a/b c'),
    ('{{ trimPrefix "-" "-hello" }}', 'hello'),
    ('{{ .path | trimSuffix "c" }}', '/a/b '),
    ('{{ trimSuffix "-" "hello-" }}', 'hello'),
    ('{{ .path | trunc 2 }}', '/a'),
    ('{{ trunc 5 "hello world"}}', 'hello'),
    ('{{ trunc -5 "hello world"}}', 'world'),
    ('{{ .foo | upper }}', 'BLIP'),
    ('{{ upper  "hello"}}', 'HELLO'),
    ('{{ .url | urlencode }}', 'a+b%26c%3D%C3%A9%2F~'),
    ('{{ urlencode  .url}}', 'a+b%26c%3D%C3%A9%2F~'),
    ('{{ "a+b%20c%C3%A9" | urldecode }}', 'a b cé'),
    ('{{ if contains "ErrTimeout" .err }} timeout {{end}}', ' timeout '),
    ('{{ if contains "he" "hello" }} yes {{end}}', ' yes '),
    ('{{ if eq "ErrTimeout" .err }} timeout {{end}}', ''),
    ('{{ if eq "hello" "hello" }} yes {{end}}', ' yes '),
    ('{{ if hasSuffix .err "Timeout" }} timeout {{end}}', ''),
    ('{{ if hasPrefix "he" "hello" }} yes {{end}}', ' yes '),
    ('{{ add 3 2 5 }}', '10'),
    ('{{ addf 3.5 2 5 }}', '10.5'),
    ('{{ ceil 123.001 }}', '124'),
    ('{{ div 10 2}}', '5'),
    ('{{ divf 10 2 4}}', '1.25'),
    ('{{ "3.5" | float64 }}', '3.5'),
    ('{{ floor 123.9999 }}', '123'),
    ('{{ "3" | int }}', '3'),
    ('{{ max 1 2 3 }}', '3'),
    ('{{ maxf 1 2.5 3 }}', '3'),
    ('{{ min 1 2 3 }}', '1'),
    ('{{ minf 1 2.5 3 }}', '1'),
    ('{{ mul 5 2 3}}', '30'),
    ('{{ mulf 5.5 2 2.5 }}', '27.5'),
    ('{{ mod 10 3}}', '1'),
    ('{{ round 123.555555 3 }}', '123.556'),
    ('{{ round 123.88571428571 5 .2 }}', '123.88572'),
    ('{{ sub 5 2 }}', '3'),
    ('{{ subf  5.5 2 1.5 }}', '2'),
    ('{{ count "a|b" "abab" }}', '4'),
    ('{{ count "o" "foo" }}', '2'),
    ('{{ __line__ | count "i"}}', '2'),
    ('{{ regexReplaceAll "(a*)bc" .foo "${1}a" }}', 'blip'),
    ('{{ regexReplaceAllLiteral "(ts=)" "ts=1 ts=2" "timestamp=" }}', 'timestamp=1 timestamp=2'),
]

# The cases of Loki's pkg/logql/log/fmt_test.go (their labels inlined).
LOKI_FORMATTER_CASES = [
    ('{{.foo | count "abc" }}', '0'),
    ('foo{{.foo}}buzz{{  .bar  }}', 'fooblipbuzzblop'),
    ('foo{{.foo}}buzz{{ Replace .bar "blop" "bar" -1 }}', 'fooblipbuzzbar'),
    ('foo{{.foo}}buzz{{ .bar | replace "blop" "bar" }}', 'fooblipbuzzbar'),
    ('{{.foo | title }}', 'Blip'),
    ('{{.foo | substr 1 3 }} {{ .bar  | trunc 1 }} {{ .bar  | trunc 3 }}', 'li b blo'),
    ('{{ "  blip " | trim }} {{ .bar  | trimAll "op" }} {{ .bar  | trimPrefix "b" }} {{ .bar  | trimSuffix "p" }}', 'blip bl lop blo'),
    ('{{ "BLIp" | lower }} {{ .bar  | upper }}', 'blip BLOP'),
    ('{{ "foo" | repeat 3 }}', 'foofoofoo'),
    ('{{ "foo\\n bar" | indent 4 }}', '    foo\n     bar'),
    ('{{ "foo" | nindent 2 }}', '\n  foo'),
    ('{{ if  "BLIp" | contains "p"}}yes{{end}}-{{ if  "BLIp" | contains "z"}}no{{end}}', 'yes-'),
    ('{{ if  "BLIp" | hasPrefix "BL" }}yes{{end}}-{{ if  "BLIp" | hasPrefix "p"}}no{{end}}', 'yes-'),
    ('{{ if  "BLIp" | hasSuffix "Ip" }}yes{{end}}-{{ if  "BLIp" | hasSuffix "pw"}}no{{end}}', 'yes-'),
    ('{{ regexReplaceAll "(p)" "BLIp" "t" }}', 'BLIt'),
    ('{{ regexReplaceAllLiteral "(p)" "BLIp" "${1}" }}', 'BLI${1}'),
    ('foo {{.missing}}buzz{{  .bar  }}', 'foo buzzblop'),
    ('foo {{.foo | ToUpper }} buzz{{  .bar  }}', 'foo BLIP buzzblop'),
    ('{{ add "1" 1 | sub "3" | mul "10" | div "20"}}', '2'),
    ('{{ addf "1.5" 1.5 | subf "5" 1.5 | mulf "10.5" | divf "20.2" }}', '3.8476190476190477'),
    ('{{ round (addf "1.5" 1.5 | subf "3.5" | mulf "10.5" | divf "20.4") 5 .2}}', '3.88572'),
    ('min is {{ min "5" "10" "15" }} and max is {{ max "5" "10" "15" }}', 'min is 5 and max is 15'),
    ('minf is {{ minf "5.3" "10.5" "15.2" }} and maxf is {{maxf "5.3" "10.5" "15.2"}}', 'minf is 5.3 and maxf is 15.2'),
    ('ceil is {{ ceil "5.3" }} and floor is {{floor "5.3" }}', 'ceil is 6 and floor is 5'),
    ('mod is {{ mod "20" 3 }}', 'mod is 2'),
    ('{{ "2.5" | float64 | int | add 10}}', '12'),
    ('{{ sub (unixEpoch (toDate "2006-01-02" "2021-11-02")) (unixEpoch (toDate "2006-01-02" "2021-11-01")) }}', '86400'),
    ('{{ date "2006-01-02" (toDate "2006-01-02" "2021-11-02") }}', '2021-11-02'),
    ('{{ __line__ }} bar {{ .bar }}', 'Line with Ünïcode bar blop'),
    ('{{.foo | default "-" }}{{.empty | default "-"}}{{.unknown | default "-"}}', 'blip--'),
    ('{{ __timestamp__ | date "2006-01-02" }} bar {{ .bar }}', '2022-06-27 bar blop'),
    ('{{ __timestamp__ | unixEpoch }} bar {{ .bar }}', '1656353124 bar blop'),
    ('{{ alignLeft 4 "hello" }}', 'hell'),
    ('{{ alignRight 4 "hello" }}', 'ello'),
    ('{{.foo}}', 'blip'),
    ('{{.foo}}  ', 'blip  '),
    ('{{.missing}}', ''),
]

# Trim markers, comments, control structures, variables, literals.
SYNTAX_CASES = [
    ('a  {{- .foo -}}  b', 'ablipb'),
    ('a  {{- .foo}}  b', 'ablip  b'),
    ('a  {{.foo -}}\n  b', 'a  blipb'),
    ('{{-3}} {{- 3}}', '-33'),
    ('{{ 3 -}} x', '3x'),
    ('{{/* comment */}}x', 'x'),
    ('a {{- /* comment */ -}} b', 'ab'),
    ('{{/* multi\nline */}}x', 'x'),
    ('x{{- /* c */}} y', 'x y'),
    ('{{ if .foo }}{{ if .empty }}A{{ else }}B{{ end }}{{ else }}C{{ end }}', 'B'),
    ('{{ if .missing }}A{{ else if .empty }}B{{ else if .foo }}C{{ else }}D{{ end }}', 'C'),
    ('{{ if not .missing }}nm{{ end }} {{ if and .foo .n }}both{{ end }} {{ if or .missing .empty }}x{{ else }}none{{ end }}', 'nm both none'),
    ('{{ and 1 0 2 }} {{ or 0 "" "x" }} {{ not "" }}', '0 x true'),
    ('{{ $x := .foo }}{{ if true }}{{ $x := "inner" }}{{ $x }}{{ end }}{{ $x }}', 'innerblip'),
    ('{{ $x := .foo }}{{ if true }}{{ $x = "inner" }}{{ $x }}{{ end }}{{ $x }}', 'innerinner'),
    ('{{ $x := 1 }}{{ $x := add $x 1 }}{{ $x }}', '2'),
    ('{{ $.foo }} {{ $.missing }}|{{ with .foo }}{{ . }}-{{ $.n }}{{ end }}', 'blip |blip-42'),
    ('{{ with .missing }}w{{ else }}nw{{ end }} {{ with $x := .foo }}{{ $x }}{{ . }}{{ end }}', 'nw blipblip'),
    ('{{ range $i, $v := (fromJson .json).a.b }}{{$i}}={{$v}},{{ end }}', '0=1,1=2.5,2=x,3=<no value>,4=true,'),
    ('{{ range $k, $v := fromJson "{\\"b\\":1,\\"a\\":2}" }}{{ $k }}={{ $v }};{{ end }}', 'a=2;b=1;'),
    ('{{ range fromJson "[]" }}x{{ else }}empty{{ end }} {{ range (fromJson "null") }}x{{ else }}nil{{ end }}', 'empty nil'),
    ('{{ range $i, $e := fromJson "[\\"a\\",\\"b\\",\\"c\\"]" }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ $e }}{{ end }}', 'ac'),
    ('{{ range $i, $e := fromJson "[\\"a\\",\\"b\\",\\"c\\"]" }}{{ if eq $i 1 }}{{ break }}{{ end }}{{ $e }}{{ end }}', 'a'),
    ('{{ $x := 1 }}{{ range fromJson "[1,2]" }}{{ $x = add $x . }}{{ end }}{{ $x }}', '4'),
    ('{{ range $k, $v := . }}{{ if hasPrefix "b" $k }}{{ $k }}={{ $v }};{{ end }}{{ end }}', 'b64=aSdtIGEgc3RyaW5nLCBlbmNvZGUgbWUh;bar=blop;'),
    ('{{ define "T" }}<{{ . }}>{{ end }}{{ template "T" .foo }}{{ template "T" }}', '<blip><<no value>>'),
    ('{{ define "T" }}{{ if lt . 3 }}{{ . }}{{ template "T" (add . 1) }}{{ end }}{{ end }}{{ template "T" 0 }}', '012'),
    ('{{ block "B" .foo }}[{{ . }}]{{ end }}', '[blip]'),
    ("{{ 3 }} {{ 3.0 }} {{ 1e3 }} {{ 0x10 }} {{ 0o17 }} {{ 0b101 }} {{ 017 }} {{ 'a' }} {{ -5 }} {{ 1_000 }} {{ .5 }} {{ 1+2i }} {{ 2i }}", '3 3 1000 16 15 5 15 97 -5 1000 0.5 (1+2i) (0+2i)'),
    ('{{ "\\x41\\101\\u00e9\\U0001F600\\t|" }} {{ `raw\\n` }} {{ true }} {{ false }}', 'AAé😀\t| raw\\n true false'),
    ('{{ (print "a" "b") }} {{ (.foo) }} {{ ("x") }} {{ print (printf "%d" 1) (len "ab") }}', 'ab blip x 12'),
    ('{{ .foo | }}', 'blip'),
    ('{{ . }}', 'map[b64:aSdtIGEgc3RyaW5nLCBlbmNvZGUgbWUh bar:blop cluster:prod-cluster dur:3m10s empty: epoch:1679577215 err:ErrTimeout happened f:3.5 foo:blip json:{"a": {"b": [1, 2.5, "x", null, true]}, "s": "str"} n:42 path:/a/b c size:3 kB status:200 ts:2023-03-10T01:32:40.340485723Z uni:héllo wörld url:a b&c=é/~]'),
    ('{{ 1.0 }} {{ 1.5e300 }} {{ 0.000001 }} {{ 123456789.5 }} {{ 1e21 }} {{ 100000.0 }} {{ 1000000.0 }}', '1 1.5e+300 1e-06 1.234567895e+08 1e+21 100000 1e+06'),
]

# Go fmt verbs, flags, widths, argument indexes and fmt's in-band errors.
PRINTF_CASES = [
    ('{{ printf "%d %s %v %5.2f %q %x %-5s|" 3 "a" 1.5 3.14159 "hi" "hi" "ab" }}', '3 a 1.5  3.14 "hi" 6869 ab   |'),
    ('{{ printf "%05s|%-6.2f|%+d|% d|%x|%X|%o|%#x|%#o|%b|%c|%q|%U|%#U|%08.3f" "ab" 3.14159 5 5 255 255 8 255 8 5 65 65 65 65 -3.14159 }}', "000ab|3.14  |+5| 5|ff|FF|10|0xff|010|101|A|'A'|U+0041|U+0041 'A'|-003.142"),
    ('{{ printf "%e|%E|%g|%G|%.3g|%.10g|%#g|%.0f|%5.1f|%-8.3e|" 123456.789 0.000012 1e21 1e-7 123456.0 1.0 1.0 2.5 3.14159 1234.5 }}', '1.234568e+05|1.200000E-05|1e+21|1E-07|1.23e+05|1|1.00000|2|  3.1|1.234e+03|'),
    ('{{ printf "%v %v %v %v %v %v" 1e20 1e21 123456789.0 0.0001 0.00001 100000.0 }}', '1e+20 1e+21 1.23456789e+08 0.0001 1e-05 100000'),
    ('{{ printf "%d" "a" }} {{ printf "%s" 3 }} {{ printf "%d" }} {{ printf "%d" 1 2 }} {{ printf "%!" }} {{ printf "%z" 3 }} {{ printf "%" }}', '%!d(string=a) %!s(int=3) %!d(MISSING) 1%!(EXTRA int=2) %!!(MISSING) %!z(int=3) %!(NOVERB)'),
    ('{{ printf "%[2]d %[1]d %d" 1 2 }} {{ printf "%*d|%-*d|%.*f" 5 42 4 7 2 3.14159 }} {{ printf "%[5]d" 1 }}', '2 1 2    42|7   |3.14 %!d(BADINDEX)'),
    ('{{ printf "%q %+q %#q %x % x %X" "héllo\\n" "héllo" "abc" "héllo" "hé" "hé" }}', '"héllo\\n" "h\\u00e9llo" `abc` 68c3a96c6c6f 68 c3 a9 68C3A9'),
    ('{{ printf "%6.2v|%.2s|%5t|%-5t|%t" 3.14159 "héllo" true false 1 }}', '   3.1|hé| true|false|%!t(int=1)'),
    ('{{ printf "%T %T %T %T %T %T %T %T" 1 1.5 "s" true (add 1 2) (fromJson .json) __timestamp__ nil }}', 'int float64 string bool int64 map[string]interface {} time.Time <nil>'),
    ('{{ printf "%s|%v|%d" (fromJson .json).a (fromJson .json).a.b (fromJson .json).a.b }}', 'map[b:[%!s(float64=1) %!s(float64=2.5) x <nil> %!s(bool=true)]]|[1 2.5 x <nil> true]|[%!d(float64=1) %!d(float64=2.5) %!d(string=x) <nil> %!d(bool=true)]'),
    ('{{ printf "%v|%5.1f|%+f|% f" (float64 "Inf") (float64 "-Inf") (float64 "NaN") (float64 "NaN") }}', '+Inf| -Inf|+NaN| NaN'),
    ('{{ printf "%-10s|%10s|%.3s" .uni .uni .uni }}', 'héllo wörld|héllo wörld|hél'),
    ('{{ printf "%v|%s|%d|%v" __timestamp__ (__timestamp__).Month (__timestamp__).Month (__timestamp__).Weekday }}', '2022-06-27 18:05:24.12 +0000 UTC|June|6|Monday'),
    ('{{ printf "%#v" (fromJson .json) }}', 'map[string]interface {}{"a":map[string]interface {}{"b":[]interface {}{1, 2.5, "x", interface {}(nil), true}}, "s":"str"}'),
    ('{{ print nil 1 2 "a" "b" 3 }} {{ print 1.5 true }}', '<nil> 1 2ab3 1.5 true'),
    ('{{ println 1 2 "a" }}', '1 2 a\n'),
    ('{{ html "<a href=\\"x\\">\'&\'</a>" }} {{ js "<a href=\\"x\\">\'&\'=\\\\</a>\\n\\té" }} {{ urlquery "a b&c=d/é~" }}', '&lt;a href=&#34;x&#34;&gt;&#39;&amp;&#39;&lt;/a&gt; \\u003Ca href\\u003D\\"x\\"\\u003E\\\'\\u0026\\\'\\u003D\\\\\\u003C/a\\u003E\\u000A\\u0009é a+b%26c%3Dd%2F%C3%A9~'),
    ('{{ html 1 2 }} {{ js 1 "a" }} {{ urlquery nil }}', '1 2 1a %3Cno+value%3E'),
]

# Go layouts for formatting and parsing; Go's Local zone is UTC here.
DATE_CASES = [
    ('{{ __timestamp__ | date "Mon Jan _2 15:04:05 MST 2006" }}', 'Mon Jun 27 18:05:24 UTC 2022'),
    ('{{ __timestamp__ | date "3:04PM pm .000 .999 ,9 .000000000 Z07:00 -0700 -07 Z0700 __2 002 06 January Monday Jan Mon" }}', '6:05PM pm .120 .12 ,1 .120000000 Z +0000 +00 Z 178 178 22 June Monday Jun Mon'),
    ('{{ __timestamp__ | date "2006-01-02T15:04:05Z07:00" }} {{ __timestamp__ | date "02/01/06 03:04:05.99" }} {{ __timestamp__ | date "_2 1 2006_2006" }}', '2022-06-27T18:05:24Z 27/06/22 06:05:24.12 27 6 2022_2022'),
    ('{{ date "2006" 0 }} {{ date "2006-01-02" (add 86400 1) }} {{ date "2006" "x" | len }}', '1970 1970-01-02 4'),
    ('{{ toDate "2006-01-02 15:04:05" "2021-11-02 10:20:30.123" }} {{ toDate "2006-01-02" "bad" }} {{ unixEpoch (toDate "2006-01-02" "bad") }}', '2021-11-02 10:20:30.123 +0000 UTC 0001-01-01 00:00:00 +0000 UTC -62135596800'),
    ('{{ toDate "Jan 2, 2006 at 3:04pm (MST)" "Feb 3, 2013 at 7:54pm (PST)" }}', '2013-02-03 19:54:00 +0000 PST'),
    ('{{ toDate "02 Jan 06 15:04 -0700" "10 Mar 23 01:32 +0530" | unixEpoch }} {{ toDate "2006-01-02T15:04:05Z07:00" "2023-03-10T01:32:40+01:00" }}', '1678392120 2023-03-10 01:32:40 +0100 +0100'),
    ('{{ toDateInZone "2006-01-02 15:04" "America/New_York" "2021-07-02 10:20" }} {{ toDateInZone "2006-01-02 15:04 -0700" "America/New_York" "2021-07-02 10:20 +0100" }}', '2021-07-02 10:20:00 -0400 EDT 2021-07-02 10:20:00 +0100 +0100'),
    ('{{ toDateInZone "2006-01-02 15:04 MST" "UTC" "2021-07-02 10:20 PDT" }} {{ toDateInZone "Jan 2 2006" "Nope/Zone" "feb 3 2021" }}', '2021-07-02 10:20:00 +0000 PDT 2021-02-03 00:00:00 +0000 UTC'),
    ('{{ toDateInZone "2006-01-02 15:04" "Asia/Kolkata" "2021-07-02 10:20" | date "2006-01-02 15:04 MST -07:00" }}', '2021-07-02 04:50 UTC +00:00'),
    ('{{ unixToTime "19503" }} {{ unixToTime "1679577215" }} {{ unixToTime "1257894000000" }} {{ unixToTime "1673798889902000" }} {{ unixToTime "1000000000000000000" }}', '2023-05-26 00:00:00 +0000 UTC 2023-03-23 13:13:35 +0000 UTC 2009-11-10 23:00:00 +0000 UTC 2023-01-15 16:08:09.902 +0000 UTC 2001-09-09 01:46:40 +0000 UTC'),
    ('{{ (__timestamp__).Unix }} {{ (__timestamp__).Format "2006" }} {{ __timestamp__.Year }} {{ __timestamp__.YearDay }} {{ __timestamp__.UnixMilli }}', '1656353124 2022 2022 178 1656353124120'),
]

# Argument conversions (spf13/cast), byte-wise sprig string functions, builtins.
FUNCTION_CASES = [
    ('{{ add "3" 4 "1.5" }} {{ int "0x10" }} {{ int "010" }} {{ int "3.0" }} {{ int "3.5" }} {{ float64 "1e3" }} {{ add 1 true }} {{ float64 "x" }}', '7 16 8 3 0 1000 2 0'),
    ('{{ max 1 "5" 3.7 }} {{ min 1 "-5" }} {{ maxf 1 "5.5" }} {{ ceil "1.2" }} {{ floor -1.5 }} {{ round -2.5 0 }} {{ round 2.5 0 }} {{ mod -7 3 }} {{ div -7 2 }} {{ sub 1 "x" }}', '5 -5 5.5 2 -2 -3 3 -1 -3 1'),
    ('{{ addf 0.1 0.2 }} {{ mulf 0.1 3 }} {{ divf 2 3 }} {{ subf 0.3 0.1 }}', '0.3 0.3 0.6666666666666667 0.2'),
    ('{{ bytes "3 kB" }} {{ bytes "10" }} {{ bytes "1,000 b" }} {{ bytes "2KiB" }}', '3000 10 1000 2048'),
    ('{{ duration "3ms" }} {{ duration "1h30m" }} {{ duration "-1.5s" }} {{ duration "0" }} {{ duration "1µs" }} {{ duration ".5m" }}', '0.003 5400 -1.5 0 1e-06 30'),
    ('{{ b64dec "aGVsbG8=" }} {{ b64dec "aGVsbG8" }} {{ b64dec "aGVs*G8=" }} {{ b64dec "aGVsbA=" }}', 'hello illegal base64 data at input byte 4 illegal base64 data at input byte 4 illegal base64 data at input byte 7'),
    ('{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }} {{ regexReplaceAll "a(x*)b" "-ab-axxb-" "$1W" }} {{ regexReplaceAll "(?P<n>x+)" "axxb" "<$n>" }}', '-W-xxW- --- a<xx>b'),
    ('{{ regexReplaceAll "a*" "baaac" "-" }} {{ regexReplaceAll "" "abc" "-" }} {{ count "a*" "baaac" }} {{ count "" "abc" }} {{ regexReplaceAll "." "aé😀" "." }}', '-b-c- -a-b-c- 3 4 ...'),
    ('{{ substr 2 10 "hello" }} {{ substr -1 2 "hello" }} {{ substr 1 -1 "hello" }}', 'llo he ello'),
    ('{{ trunc -2 "hello" }} {{ trunc -10 "hello" }} {{ alignLeft 7 "héllo" }}| {{ alignRight 3 "héllo" }}', 'lo hello héllo  | llo'),
    ('{{ title "élan vital ßx hello_world foo-bar" }} {{ upper "straße" }} {{ ToLower "ÉCOLE" }} {{ TrimSpace "\\u00a0 x \\u001c" }}', 'Élan Vital ßx Hello_world Foo-Bar STRAßE école x \x1c'),
    ('{{ Replace "aaa" "a" "b" 2 }} {{ Trim "xxhixx" "x" }} {{ TrimLeft "xxhixx" "x" }} {{ TrimRight "xxhixx" "x" }} {{ TrimPrefix "xxhi" "x" }} {{ TrimSuffix "hixx" "x" }}', 'bba hi hixx xxhi xhi hix'),
    ('{{ len .foo }} {{ len "héllo" }} {{ index "abc" 1 }} {{ len (fromJson .json) }} {{ index . "foo" }} {{ index . "missing" }}|', '4 6 98 2 blip |'),
    ('{{ index (fromJson .json) "a" "b" 1 }} {{ index (fromJson .json) "nope" }} {{ slice "hello" 1 3 }} {{ slice "hello" 2 }} {{ slice (fromJson .json).a.b 1 2 }}', '2.5 <no value> el llo [2.5]'),
    ('{{ eq .foo "blip" "x" }} {{ ne 1 2 }} {{ lt 1 2 }} {{ lt "a" "b" }} {{ le 2 2 }} {{ gt 1 2 }} {{ ge 2 1 }} {{ eq nil nil }} {{ eq 1 (add 0 1) }}', 'true true true true true false true true true'),
    ('{{ fromJson "bad" }} {{ (fromJson .json).nope }} {{ fromJson "[1, {\\"a\\": null}]" }} {{ fromJson "123456789012" }}', '<no value> <no value> [1 map[a:<nil>]] 1.23456789012e+11'),
    ('{{ .uni | upper }} {{ .uni | trunc 2 }} {{ .uni | substr 1 3 }} {{ .uni | title }} {{ .uni | b64enc | b64dec }} {{ .uni | len }}', 'HÉLLO WÖRLD h� é Héllo Wörld héllo wörld 13'),
]

# Runtime failures: Loki keeps the line and sets __error__=TemplateFormatErr, this text
# going to __error_details__.
EXEC_ERRORS = [
    ('{{.foo Replace "foo"}}', 'template: line:1:2: executing "line" at <.foo>: foo is not a method but has arguments'),
    ('{{.foo | now}}', 'template: line:1:9: executing "line" at <now>: wrong number of args for now: want 0 got 1'),
    ('{{.foo.bar}}', 'template: line:1:6: executing "line" at <.foo.bar>: can\'t evaluate field bar in type string'),
    ('{{ (fromJson .json).a.nope.x }}', 'template: line:1:13: executing "line" at <.json>: nil pointer evaluating interface {}.x'),
    ('{{ eq 1 1.0 }}', 'template: line:1:3: executing "line" at <eq 1 1.0>: error calling eq: incompatible types for comparison'),
    ('{{ eq "a" 1 }}', 'template: line:1:3: executing "line" at <eq "a" 1>: error calling eq: incompatible types for comparison'),
    ('{{ lt true false }}', 'template: line:1:3: executing "line" at <lt true false>: error calling lt: invalid type for comparison'),
    ('{{ eq 1 }}', 'template: line:1:3: executing "line" at <eq 1>: error calling eq: missing argument for comparison'),
    ('{{ ne "a" }}', 'template: line:1:3: executing "line" at <ne>: wrong number of args for ne: want 2 got 1'),
    ('{{ and }}', 'template: line:1:3: executing "line" at <and>: wrong number of args for and: want at least 1 got 0'),
    ('{{ div 1 0 }}', 'template: line:1:3: executing "line" at <div 1 0>: error calling div: runtime error: integer divide by zero'),
    ('{{ mod 1 0 }}', 'template: line:1:3: executing "line" at <mod 1 0>: error calling mod: runtime error: integer divide by zero'),
    ('{{ divf 1 0 }}', 'template: line:1:3: executing "line" at <divf 1 0>: error calling divf: decimal division by 0'),
    ('{{ trunc (add 1 2) "hello" }}', 'template: line:1:16: executing "line" at <2>: wrong type for value; expected int; got int64'),
    ('{{ trunc 2.5 "hello" }}', 'template: line:1:9: executing "line" at <2.5>: expected integer; found 2.5'),
    ('{{ trunc .n "hello" }}', 'template: line:1:9: executing "line" at <.n>: wrong type for value; expected int; got string'),
    ('{{ lower 3 }}', 'template: line:1:9: executing "line" at <3>: expected string; found 3'),
    ('{{ lower (fromJson "x") }}', 'template: line:1:19: executing "line" at <"x">: invalid value; expected string'),
    ('{{ lower (fromJson .json).nope }}', 'template: line:1:19: executing "line" at <.json>: wrong type for value; expected string; got interface {}'),
    ('{{ unixEpoch .ts }}', 'template: line:1:13: executing "line" at <.ts>: wrong type for value; expected time.Time; got string'),
    ('{{ unixEpoch "x" }}', 'template: line:1:13: executing "line" at <"x">: can\'t handle "x" for arg of type time.Time'),
    ('{{ "a" "b" }}', 'template: line:1:3: executing "line" at <"a">: can\'t give argument to non-function "a"'),
    ('{{ nil }}', 'template: line:1:3: executing "line" at <nil>: nil is not a command'),
    ('{{ len 3 }}', 'template: line:1:3: executing "line" at <len 3>: error calling len: len of type int'),
    ('{{ index (fromJson .json).a.b 9 }}', 'template: line:1:3: executing "line" at <index (fromJson .json).a.b 9>: error calling index: index out of range: 9'),
    ('{{ index . 1 }}', 'template: line:1:3: executing "line" at <index . 1>: error calling index: value has type int; should be string'),
    ('{{ unixToTime "123" }}', 'template: line:1:3: executing "line" at <unixToTime "123">: error calling unixToTime: unable to parse time \'123\': %!w(<nil>)'),
    ('{{ unixToTime "abc" }}', 'template: line:1:3: executing "line" at <unixToTime "abc">: error calling unixToTime: unable to parse time \'abc\': strconv.ParseInt: parsing "abc": invalid syntax'),
    ('{{ bytes "3 XB" }}', 'template: line:1:3: executing "line" at <bytes "3 XB">: error calling bytes: unhandled size name: xb'),
    ('{{ duration "1d" }}', 'template: line:1:3: executing "line" at <duration "1d">: error calling duration: time: unknown unit "d" in duration "1d"'),
    ('{{ duration "1" }}', 'template: line:1:3: executing "line" at <duration "1">: error calling duration: time: missing unit in duration "1"'),
    ('{{ urldecode "a%zzb" }}', 'template: line:1:3: executing "line" at <urldecode "a%zzb">: error calling urldecode: invalid URL escape "%zz"'),
    ('{{ regexReplaceAll "(" "x" "y" }}', 'template: line:1:3: executing "line" at <regexReplaceAll "(" "x" "y">: error calling regexReplaceAll: error parsing regexp: missing closing ): `(`'),
    ('{{ substr 3 2 "hello" }}', 'template: line:1:3: executing "line" at <substr 3 2 "hello">: error calling substr: runtime error: slice bounds out of range [3:2]'),
    ('{{ substr 7 -1 "hello" }}', 'template: line:1:3: executing "line" at <substr 7 -1 "hello">: error calling substr: runtime error: slice bounds out of range [7:5]'),
    ('{{ repeat -1 "x" }}', 'template: line:1:3: executing "line" at <repeat -1 "x">: error calling repeat: strings: negative Repeat count'),
    ('{{ template "nope" }}', 'template: line:1:12: executing "line" at <{{template "nope"}}>: template "nope" not defined'),
    ('{{ range .foo }}x{{ end }}', 'template: line:1:9: executing "line" at <.foo>: range can\'t iterate over blip'),
    ('{{ $x := $x }}', 'template: line:1:9: executing "line" at <$x>: undefined variable: $x'),
    ('{{ $y = 1 }}', 'template: line:1:8: executing "line" at <1>: undefined variable: $y'),
    ('{{ slice "abc" 2 1 }}', 'template: line:1:3: executing "line" at <slice "abc" 2 1>: error calling slice: invalid slice index: 2 > 1'),
    ('{{ call .foo }}', 'template: line:1:3: executing "line" at <call .foo>: error calling call: non-function of type string'),
    ('héllo\nwörld {{ .foo }}\n  é {{ lower 3 }}', 'template: line:3:14: executing "line" at <3>: expected string; found 3'),
    ('{{ define "T" }}{{ lower 3 }}{{ end }}x{{ template "T" }}', 'template: line:1:25: executing "T" at <3>: expected string; found 3'),
]

# (template, Go's message, the offset QueryError.pos points at)
PARSE_ERRORS = [
    ('{{ foo }}', 'template: line:1: function "foo" not defined', 3),
    ('{{ abbrev 3 "x" }}', 'template: line:1: function "abbrev" not defined', 3),
    ('{{ sha256sum "x" }}', 'template: line:1: function "sha256sum" not defined', 3),
    ('{{ toJson . }}', 'template: line:1: function "toJson" not defined', 3),
    ('{{ }}', 'template: line:1: missing value for command', 3),
    ('{{ end }}', 'template: line:1: unexpected {{end}}', 3),
    ('{{ if .foo }}', 'template: line:1: unexpected EOF', 13),
    ('{{ else }}', 'template: line:1: unexpected {{else}}', 3),
    ('{{ if }}{{ end }}', 'template: line:1: missing value for if', 6),
    ('{{ .foo | "b" }}', 'template: line:1: non executable command in pipeline stage 2', 10),
    ('{{ $undefined }}', 'template: line:1: undefined variable "$undefined"', 3),
    ('{{ (.foo }}', 'template: line:1: unclosed left paren', 9),
    ('{{ .foo) }}', 'template: line:1: unexpected ")" in command', 7),
    ('{{ 3x }}', 'template: line:1: bad number syntax: "3x"', 3),
    ('{{ 1e }}', 'template: line:1: illegal number syntax: "1e"', 3),
    ('{{ 99999999999999999999 }}', 'template: line:1: integer overflow: "99999999999999999999"', 3),
    ('{{ 0x }}', 'template: line:1: illegal number syntax: "0x"', 3),
    ('{{ "abc }}', 'template: line:1: unterminated quoted string', 3),
    ('{{ `abc }}', 'template: line:1: unterminated raw quoted string', 3),
    ("{{ 'ab' }}", "template: line:1: malformed character constant: 'ab'", 3),
    ('{{ "\\q" }}', 'template: line:1: invalid syntax', 3),
    ('{{ /* c */ }}', 'template: line:1: unexpected "/" in command', 3),
    ('{{/* unclosed', 'template: line:1: unclosed comment', 0),
    ('{{/* c */ x }}', 'template: line:1: comment ends before closing delimiter', 0),
    ('{{ .foo', 'template: line:1: unclosed action', 0),
    ('{{ .foo }', 'template: line:1: unexpected "}" in operand', 8),
    ('{{ @ }}', 'template: line:1: unexpected "@" in command', 3),
    ('{{ .a-b }}', "template: line:1: bad character U+002D '-'", 5),
    ('{{ 3.foo }}', 'template: line:1: bad number syntax: "3.f"', 3),
    ('{{ nil.x }}', 'template: line:1: unexpected . after term "nil"', 6),
    ('{{ "x".y }}', 'template: line:1: unexpected . after term "\\"x\\""', 6),
    ('{{ break }}', 'template: line:1: {{break}} outside {{range}}', 3),
    ('{{ with $x := 1 }}{{ $x }}{{ end }}{{ $x }}', 'template: line:1: undefined variable "$x"', 38),
    ('{{ if 1 }}a{{ else }}b{{ else }}c{{ end }}', 'template: line:1: expected end; found {{else}}', 25),
    ('{{ range $i, $v, $w := .x }}{{ end }}', 'template: line:1: too many declarations in range', 13),
    ('{{ $a, $b := 1 }}', 'template: line:1: too many declarations in command', 3),
    ('{{$x=1}}', "template: line:1: bad character U+003D '='", 4),
    ('line1\n{{ .foo\n', 'template: line:3: unclosed action started at line:2', 6),
    ('a\nb {{ if .x }}\n{{ lower }}', 'template: line:3: unexpected EOF', 27),
    ('{{ define "T" }}a{{ end }}{{ define "T" }}b{{ end }}', 'template: line:1: template: multiple definition of template "T"', 36),
    ('{{ template T }}', 'template: line:1: unexpected "T" in template clause', 12),
    ('{{ .foo | | }}', 'template: line:1: unexpected "|" in command', 10),
    ('{{ 1 2 | 3 }}', 'template: line:1: non executable command in pipeline stage 2', 9),
    ('{{ printf "x" |}}{{', 'template: line:1: unclosed action', 17),
]


@pytest.mark.parametrize("text, expected", DOCS_EXAMPLES)
def test_loki_documentation_examples(text, expected):
    assert render(text) == expected


@pytest.mark.parametrize("text, expected", LOKI_FORMATTER_CASES)
def test_loki_formatter_cases(text, expected):
    assert render(text) == expected


@pytest.mark.parametrize("text, expected", SYNTAX_CASES)
def test_syntax(text, expected):
    assert render(text) == expected


@pytest.mark.parametrize("text, expected", PRINTF_CASES)
def test_printf_and_printing(text, expected):
    assert render(text) == expected


@pytest.mark.parametrize("text, expected", DATE_CASES)
def test_dates(text, expected):
    assert render(text) == expected


@pytest.mark.parametrize("text, expected", FUNCTION_CASES)
def test_functions(text, expected):
    assert render(text) == expected


@pytest.mark.parametrize("text, message", EXEC_ERRORS)
def test_runtime_errors_carry_go_message(text, message):
    tmpl = Template(text)  # runtime failures never fail the parse
    with pytest.raises(TemplateError) as info:
        tmpl.execute(LABELS, LINE, TS)
    assert str(info.value) == message
    assert isinstance(info.value, ChunkstoreError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("text, message, pos", PARSE_ERRORS)
def test_syntax_errors_carry_go_message_and_position(text, message, pos):
    with pytest.raises(QueryError) as info:
        Template(text)
    assert info.value.message == message
    assert info.value.pos == pos


def test_unknown_functions_fail_at_parse_time_like_loki():
    # sprig functions Loki does not enable are not defined, as in Loki
    for name in ("abbrev", "abbrevboth", "sha256sum", "toJson", "quote", "split", "join"):
        with pytest.raises(QueryError, match=f'function "{name}" not defined'):
            Template("{{ " + name + ' "x" }}')


def test_missing_label_is_empty_string_everywhere():
    for labels in ({}, {"other": "x"}, types.MappingProxyType({"other": "x"})):
        assert Template("{{.missing}}").execute(labels, "l", 0) == ""
        assert Template("a{{ .missing }}b{{ .missing | upper }}c").execute(labels, "l", 0) == "abc"
        assert Template('{{ if .missing }}y{{ else }}n{{ end }}').execute(labels, "l", 0) == "n"
        assert Template('{{ .missing | default "d" }}').execute(labels, "l", 0) == "d"
        assert Template("{{ index . \"missing\" }}|{{ len .missing }}").execute(labels, "l", 0) == "|0"


def test_any_mapping_works_as_labels():
    proxy = types.MappingProxyType(dict(LABELS))
    for text in ("{{.foo}}", "{{ .foo }} {{ .bar | upper }}", "{{ range $k, $v := . }}{{ $k }};{{ end }}"):
        assert Template(text).execute(proxy, LINE, TS) == render(text)


def test_unicode_passes_through():
    labels = {"msg": "日本語 ✓ 😀", "e": "é"}
    assert Template("→{{ .msg }}←").execute(labels, "", 0) == "→日本語 ✓ 😀←"
    assert Template("{{ .msg | upper }} {{ len .msg }} {{ .msg | alignLeft 3 }}").execute(labels, "", 0) == "日本語 ✓ 😀 18 日本語"
    # sprig cuts bytes: half a character becomes U+FFFD, as a client of Loki receives it
    assert Template("{{ .e | trunc 1 }}|{{ substr 0 3 .msg }}").execute(labels, "", 0) == "\ufffd|日"
    assert Template("{{ __line__ }}").execute({}, "ünï 😀", 0) == "ünï 😀"


def test_text_without_actions_is_returned_as_is():
    text = "no actions here } { }} {"
    assert Template(text).execute(LABELS, LINE, TS) == text
    assert Template("").execute(LABELS, LINE, TS) == ""


def test_timestamp_is_utc_and_nanosecond_exact():
    assert render("{{ __timestamp__ }}", ts=0) == "1970-01-01 00:00:00 +0000 UTC"
    assert render("{{ __timestamp__ }}", ts=-1) == "1969-12-31 23:59:59.999999999 +0000 UTC"
    assert render("{{ __timestamp__ | unixEpochNanos }}", ts=1_700_000_000_123_456_789) == "1700000000123456789"
    assert render('{{ __timestamp__ | date "2006-01-02 15:04:05.000000000" }}', ts=1) == "1970-01-01 00:00:00.000000001"


def test_now_is_the_current_time():
    before = int(time.time())
    value = int(render("{{ now | unixEpoch }}"))
    assert before <= value <= int(time.time())


def test_template_name_appears_in_errors():
    tmpl = Template("{{ lower 1 }}", name="label")
    with pytest.raises(TemplateError, match=r'^template: label:1:9: executing "label" at <1>'):
        tmpl.execute({}, "", 0)
    with pytest.raises(QueryError, match="template: label:1: function"):
        Template("{{ nope }}", name="label")


def test_referenced_labels_follow_lokis_walk():
    tmpl = Template('{{ .a }} {{ if .b }}{{ .c.d | printf "%s" .e }}{{ else }}{{ .f }}{{ end }}'
                    '{{ range .g }}{{ .h }}{{ end }}{{ with .i }}{{ end }}{{ $.x }}{{ (fromJson .j).k }}')
    # Loki's listNodeFields: field nodes only, so "$.x" and "(pipeline).k" are not counted
    assert tmpl.referenced_labels == frozenset("abcdefghi")
    assert Template("{{ __line__ }} {{ . }}").referenced_labels == frozenset()
    assert Template("{{.foo}}").referenced_labels == frozenset({"foo"})


def test_template_is_reusable_and_thread_safe():
    tmpl = Template('{{ $n := .n }}{{ range $i, $e := fromJson .list }}{{ if $i }},{{ end }}{{ add $e $n }}{{ end }}|{{ __line__ }}')
    errors = []

    def worker(k: int) -> None:
        for j in range(300):
            labels = {"n": str(k), "list": f"[{j}, {j + 1}]"}
            expected = f"{j + k},{j + 1 + k}|line{k}"
            got = tmpl.execute(labels, f"line{k}", 0)
            if got != expected:
                errors.append((got, expected))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_literal_regex_errors_surface_at_run_time_not_parse_time():
    tmpl = Template('{{ if .x }}{{ regexReplaceAll "(" .x "y" }}{{ end }}')
    assert tmpl.execute({}, "", 0) == ""
    with pytest.raises(TemplateError, match="missing closing"):
        tmpl.execute({"x": "1"}, "", 0)


def test_deep_recursion_is_a_template_error():
    tmpl = Template('{{ define "T" }}{{ template "T" . }}{{ end }}{{ template "T" }}')
    with pytest.raises(TemplateError, match="exceeded maximum template depth"):
        tmpl.execute({}, "", 0)


def test_text_must_be_a_string():
    with pytest.raises(TypeError):
        Template(b"{{.x}}")  # type: ignore[arg-type]


# --- properties

_PIECES = st.sampled_from([
    "{{", "}}", "{{- ", " -}}", " ", ".foo", ".n", ".missing", ".", "$", "$x", "$x := ", "$x = ", "|", "(", ")",
    "if ", "else ", "end", "range ", "with ", "not ", "and ", "eq ", "len ", "index ", "print ", "printf ",
    '"%v|%d"', '"a"', '""', "`r`", "1", "2.5", "-3", "0x1F", "'c'", "true", "nil", "upper ", "trunc ",
    "substr ", "add ", "addf ", "default ", "replace ", "fromJson ", ".json", "__line__", "__timestamp__",
    "date ", '"2006-01-02"', "unixEpoch ", "repeat ", "break", "continue", "/*", "*/", "x", "é", "\n", ",",
    "=", ":", "@", "define ", "template ", '"T"', "block ", "div ", "0", "\\", "'", '"', "`",
])
_TEMPLATE_TEXT = st.one_of(st.text(), st.lists(_PIECES, max_size=16).map("".join),
                           st.lists(st.one_of(_PIECES, st.text(max_size=3)), max_size=12).map("".join))


@given(st.text().filter(lambda s: "{{" not in s))
def test_text_without_open_delimiters_is_unchanged(text):
    assert Template(text).execute(LABELS, LINE, TS) == text


@given(_TEMPLATE_TEXT)
def test_arbitrary_text_fails_only_with_query_error_then_template_error(text):
    try:
        tmpl = Template(text)
    except QueryError as exc:
        assert exc.pos is not None and 0 <= exc.pos <= len(text)
        return
    try:
        out = tmpl.execute(LABELS, LINE, TS)
    except TemplateError:
        return
    assert isinstance(out, str)


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=8), max_size=4), st.text(max_size=20),
       st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_execution_depends_only_on_its_arguments(labels, line, ts):
    tmpl = Template('{{ range $k, $v := . }}{{ $k }}={{ $v | printf "%q" }};{{ end }}{{ __line__ | len }} {{ __timestamp__ | unixEpochNanos }}')
    first = tmpl.execute(labels, line, ts)
    assert tmpl.execute(dict(labels), line, ts) == first
    assert first.endswith(f" {ts}")
