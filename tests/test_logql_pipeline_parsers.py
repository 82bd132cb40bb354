"""The json, logfmt, regexp, pattern and unpack parser stages of the LogQL pipeline.

Cases with exact expected labels are Loki's own (docs and parser_test.go);
Hypothesis checks that no input makes a parser raise and that the fast JSON
path agrees with the exact jsonparser-grammar scanner.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chunkstore.errors import QueryError
from chunkstore.logql.labels_builder import LabelsBuilder
from chunkstore.logql.parsers import (
    JSONParser,
    LogfmtParser,
    PatternParser,
    RegexpParser,
    UnpackParser,
    sanitize_label_key,
)


def run(parser, line: bytes, stream=None) -> dict:
    lb = LabelsBuilder(stream or {})
    out, ok = parser.process(0, line, lb)
    assert ok and out is line
    return lb.labels()


JSON_ERROR = {"__error__": "JSONParserErr",
              "__error_details__": "Value looks like object, but can't find closing '}' symbol"}


# --------------------------------------------------------------------------
# | json
# --------------------------------------------------------------------------

DOC_LINE = json.dumps({
    "protocol": "HTTP/2.0",
    "servers": ["129.0.1.1", "10.2.1.3"],
    "request": {"time": "6.032", "method": "GET", "host": "foo.grafana.net", "size": "55",
                "headers": {"Accept": "*/*", "User-Agent": "curl/7.68.0"}},
    "response": {"status": 401, "size": "228", "latency_seconds": "6.031"},
}).encode()


class TestJSON:
    def test_documented_flattening(self):
        assert run(JSONParser(), DOC_LINE) == {
            "protocol": "HTTP/2.0", "request_time": "6.032", "request_method": "GET",
            "request_host": "foo.grafana.net", "request_size": "55", "request_headers_Accept": "*/*",
            "request_headers_User_Agent": "curl/7.68.0", "response_status": "401", "response_size": "228",
            "response_latency_seconds": "6.031",
        }
        assert run(JSONParser(), b'{ "a.b": {"c": "d"}, "e": "f" }') == {"a_b_c": "d", "e": "f"}

    @pytest.mark.parametrize("line,stream,want", [
        (b'{"app":"foo","namespace":"prod","pod":{"uuid":"foo","deployment":{"ref":"foobar"}}}', {},
         {"app": "foo", "namespace": "prod", "pod_uuid": "foo", "pod_deployment_ref": "foobar"}),
        (b'{"counter":1, "price": {"_net_":5.56909}}', {}, {"counter": "1", "price__net_": "5.56909"}),
        (b'{" ": {"foo":"bar"}}', {}, {"foo": "bar"}),
        (b'{" ": {" ":"bar"}}', {}, {"": "bar"}),
        (b'{"": {"":"bar"}}', {}, {"": "bar"}),
        (b'{"counter":1,"foo":"foo\\\\\\"bar", "price": {"_net_":5.56909}}', {},
         {"counter": "1", "price__net_": "5.56909", "foo": 'foo\\"bar'}),
        ('{"counter":1,"foo":"\ufffd", "price": {"_net_":5.56909}}'.encode(), {},
         {"counter": "1", "price__net_": "5.56909", "foo": " "}),
        (b'{"counter":1, "price": {"net_":["10","20"]}}', {}, {"counter": "1"}),
        (b'{"cou-nter":1}', {}, {"cou_nter": "1"}),
        (b'{n}', {}, JSON_ERROR),
        (b'{"app":"foo","namespace":"prod","pod":{"uuid":"foo","deployment":{"ref":"foobar"}},"next":{"err":false}}',
         {"app": "bar"}, {"app": "bar", "app_extracted": "foo", "namespace": "prod", "pod_uuid": "foo",
                          "next_err": "false", "pod_deployment_ref": "foobar"}),
    ])
    def test_loki_cases(self, line, stream, want):
        assert run(JSONParser(), line, stream) == want

    def test_value_rendering(self):
        line = b'{"f":1.0,"e":1e5,"n":-0,"t":true,"z":null,"s":"","big":123456789012345678901234567890}'
        assert run(JSONParser(), line) == {"f": "1.0", "e": "1e5", "n": "-0", "t": "true", "s": "",
                                           "big": "123456789012345678901234567890"}

    def test_key_sanitisation(self):
        assert run(JSONParser(), b'{"1a":{"2b":1},"3c":2,"x y":3,"\xc3\xa9":4}') == {
            "_1a_2b": "1", "_3c": "2", "x_y": "3", "_": "4"}
        assert run(JSONParser(), b'{"a":{" ":1}}') == {"a_": "1"}

    def test_duplicate_keys_first_wins(self):
        # grafana/loki#19568 (and Loki's conformance script parsers.logqltest)
        assert run(JSONParser(), b'{"a":"1","a":"2"}') == {"a": "1"}

    def test_errors_keep_earlier_labels(self):
        assert run(JSONParser(), b'{"a":1,}') == {"a": "1", **JSON_ERROR}
        assert run(JSONParser(), b'{"a":tru}') == {"__error__": "JSONParserErr",
                                                   "__error_details__": "Unknown value type"}
        assert run(JSONParser(), b'{"a":"x') == {"__error__": "JSONParserErr",
                                                 "__error_details__": "Value is string, but can't find closing '\"' symbol"}
        assert run(JSONParser(), b'{"a":1')["__error_details__"] == "Value is array, but can't find closing ']' symbol"
        assert run(JSONParser(), b'{"a" 1}')["__error_details__"] == "Malformed JSON error"
        assert run(JSONParser(), b'{"\\q":1}')["__error_details__"] == \
            "Encountered an invalid escape sequence in a string"

    def test_not_an_object(self):
        for line in (b"", b"plain text", b"[1,2]", b'"str"', b"42"):
            assert run(JSONParser(), line) == JSON_ERROR

    def test_lenient_like_jsonparser(self):
        assert run(JSONParser(), b'{"a":1} trailing garbage') == {"a": "1"}
        assert run(JSONParser(), b'{"a":1, }') == {"a": "1"}
        assert run(JSONParser(), b'{"a":-x}') == {"a": "-x"}

    def test_unicode_and_escapes(self):
        assert run(JSONParser(), '{"msg":"caf\u00e9 \\u00e9 \\ud83d\\ude00"}'.encode()) == {"msg": "caf\u00e9 \u00e9 \U0001f600"}
        assert run(JSONParser(), b'{"msg":"\\ud800"}') == {"msg": ""}  # lone surrogate: bad escape -> ""
        assert run(JSONParser(), b'{"msg":"a\xffb"}') == {"msg": "a b"}
        assert run(JSONParser(), b'{"k\xff":1}') == {"k_": "1"}

    def test_deep_nesting_does_not_raise(self):
        line = b'{"a":' * 5000 + b"1" + b"}" * 5000
        labels = run(JSONParser(), line)
        assert "__error__" in labels or len(labels) == 1

    def test_parsed_overrides_earlier_parsed_but_not_metadata(self):
        # a clash with structured metadata keeps both: grafana/loki#19991
        lb = LabelsBuilder({"app": "x"})
        lb.add_metadata([("trace", "m")])
        lb.set_parsed("level", "info")
        JSONParser().process(0, b'{"trace":"j","level":"warn"}', lb)
        assert lb.labels() == {"app": "x", "trace": "m", "trace_extracted": "j", "level": "warn"}


class TestJSONExpressions:
    LINE = ('{"app":"foo","field with space":"value","field with \u00dcFT8\U0001f44c":"value","null_field":null,'
            '"bool_field":false,"namespace":"prod","pod":{"uuid":"foo","deployment":{"ref":"foobar", '
            '"params": [1,2,3,"string_value"]}}}').encode()

    @pytest.mark.parametrize("params,stream,want", [
        ([("app", "app")], {}, {"app": "foo"}),
        ([("test", '["field with space"]')], {}, {"test": "value"}),
        ([("app", "app"), ("namespace", "namespace")], {}, {"app": "foo", "namespace": "prod"}),
        ([("utf8", '["field with \u00dcFT8\U0001f44c"]')], {}, {"utf8": "value"}),
        ([("uuid", "pod.uuid")], {}, {"uuid": "foo"}),
        ([("uuid", 'pod["uuid"]')], {}, {"uuid": "foo"}),
        ([("uuid", '["pod"]["uuid"]')], {}, {"uuid": "foo"}),
        ([("uuid", '["pod"].uuid')], {}, {"uuid": "foo"}),
        ([("param", "pod.deployment.params[0]")], {}, {"param": "1"}),
        ([("undefined", 'pod[""]')], {}, {"undefined": ""}),
        ([("param", 'pod.deployment.params[""]')], {}, {"param": ""}),
        ([("param", "pod.deployment.params[3]")], {}, {"param": "string_value"}),
        ([("params", "pod.deployment.params")], {}, {"params": '[1,2,3,"string_value"]'}),
        ([("deployment", "pod.deployment")], {}, {"deployment": '{"ref":"foobar", "params": [1,2,3,"string_value"]}'}),
        ([("nope", "pod.nope")], {}, {"nope": ""}),
        ([("nf", "null_field")], {}, {"nf": ""}),
        ([("bool", "bool_field")], {}, {"bool": "false"}),
        ([("uuid", "pod.uuid")], {"uuid": "bar"}, {"uuid": "bar", "uuid_extracted": "foo"}),
        ([("request_size", "request.size.invalid")], {"uuid": "bar"}, {"uuid": "bar", "request_size": ""}),
        ([("uuid", "will.not.work")], {"foo": "bar"}, {"foo": "bar", "uuid": ""}),
    ])
    def test_loki_cases(self, params, stream, want):
        assert run(JSONParser(params), self.LINE, stream) == want

    def test_documented_example(self):
        p = JSONParser([("first_server", "servers[0]"), ("ua", 'request.headers["User-Agent"]')])
        assert run(p, DOC_LINE) == {"first_server": "129.0.1.1", "ua": "curl/7.68.0"}
        p = JSONParser([("server_list", "servers"), ("headers", "request.headers")])
        assert run(p, DOC_LINE) == {"server_list": '["129.0.1.1", "10.2.1.3"]',
                                    "headers": '{"Accept": "*/*", "User-Agent": "curl/7.68.0"}'}

    def test_lines(self):
        p = JSONParser([("uuid", "pod.uuid")])
        assert run(p, b"{}") == {"uuid": ""}
        assert run(p, b"", {"foo": "bar"}) == {"foo": "bar"}
        assert run(p, b"invalid json", {"foo": "bar"}) == {"foo": "bar", "__error__": "JSONParserErr"}
        app = JSONParser([("app", "app")])
        assert run(app, b'{"app":"{ \\"key\\": \\"value\\", \\"key2\\":\\"value2\\"}"}') == \
            {"app": '{ "key": "value", "key2":"value2"}'}
        assert run(app, b'{"app":{"name":"great \\"loki\\""}}') == {"app": '{"name":"great \\"loki\\""}'}
        assert run(app, b'{"app":"a","app":"b"}') == {"app": "a"}  # EachKey: first occurrence

    @pytest.mark.parametrize("expression", ["field with space", '"pod"]', '["pod"', '["pod""uuid"]', "pod..uuid",
                                            "", "a[1.5]", "a.[0]"])
    def test_bad_expressions(self, expression):
        with pytest.raises(QueryError, match="cannot parse expression"):
            JSONParser([("x", expression)])

    def test_bad_label_name(self):
        with pytest.raises(QueryError):
            JSONParser([("1x", "a")])


# --------------------------------------------------------------------------
# | logfmt
# --------------------------------------------------------------------------

LOGFMT_CASES = [
    # (line, stream, non-strict result, strict result or None if same)
    (b"foobar====wqe=sdad1r", {"foo": "bar"}, {"foo": "bar"},
     {"foo": "bar", "__error__": "LogfmtParserErr", "__error_details__": "logfmt syntax error at pos 8 : unexpected '='"}),
    ("buzz=foo bar=\ufffdf".encode(), {}, {"bar": " f", "buzz": "foo"}, None),
    (b"buzz bar=foo", {"foo": "bar"}, {"foo": "bar", "bar": "foo"}, None),
    (b'foobar="foo bar"', {"foo": "bar"}, {"foo": "bar", "foobar": "foo bar"}, None),
    (b'foobar="foo\\nbar\\tbaz"', {"a": "b"}, {"a": "b", "foobar": "foo\nbar\tbaz"}, None),
    (b'foobar="foo\nbar\tbaz"', {"a": "b"}, {"a": "b", "foobar": "foo\nbar\tbaz"}, None),
    (b'foobar="foo ba\\\\r baz"', {"a": "b"}, {"a": "b", "foobar": "foo ba\\r baz"}, None),
    (b'foobar="foo bar\nb\\\\az"', {"a": "b"}, {"a": "b", "foobar": "foo bar\nb\\az"}, None),
    (b'foobar="foo bar" latency=10ms', {"foo": "bar"}, {"foo": "bar", "foobar": "foo bar", "latency": "10ms"}, None),
    # duplicate key: the first value wins (grafana/loki#19568, parsers.logqltest)
    (b'foobar="foo bar" foobar=10ms', {"foo": "bar"}, {"foo": "bar", "foobar": "foo bar"}, None),
    (b'foo="foo bar" foobar=10ms', {"foo": "bar"}, {"foo": "bar", "foo_extracted": "foo bar", "foobar": "10ms"}, None),
    (b'foo="foo bar" foo.bar=10ms test-dash=foo', {"foo": "bar"},
     {"foo": "bar", "foo_extracted": "foo bar", "foo_bar": "10ms", "test_dash": "foo"}, None),
    (b"", {"foo": "bar"}, {"foo": "bar"}, None),
    (b'foo="foo bar" =notkey bar=10ms', {"foo": "bar"}, {"foo": "bar", "foo_extracted": "foo bar", "bar": "10ms"},
     {"foo": "bar", "foo_extracted": "foo bar", "__error__": "LogfmtParserErr",
      "__error_details__": "logfmt syntax error at pos 15 : unexpected '='"}),
    ('foo="foo bar" b\ufffdr=10ms'.encode(), {"foo": "bar"}, {"foo": "bar", "foo_extracted": "foo bar"},
     {"foo": "bar", "foo_extracted": "foo bar", "__error__": "LogfmtParserErr",
      "__error_details__": "logfmt syntax error at pos 20 : invalid key"}),
    (b'foo="foo bar" bu"zz=10ms', {"foo": "bar"}, {"foo": "bar", "foo_extracted": "foo bar"},
     {"foo": "bar", "foo_extracted": "foo bar", "__error__": "LogfmtParserErr",
      "__error_details__": "logfmt syntax error at pos 17 : unexpected '\"'"}),
    (b'bar=bu=zz foo="foo bar"', {"foo": "bar"}, {"foo": "bar", "foo_extracted": "foo bar"},
     {"foo": "bar", "__error__": "LogfmtParserErr", "__error_details__": "logfmt syntax error at pos 7 : unexpected '='"}),
]


class TestLogfmt:
    @pytest.mark.parametrize("line,stream,want,want_strict", LOGFMT_CASES)
    def test_loki_cases(self, line, stream, want, want_strict):
        assert run(LogfmtParser(), line, stream) == want
        assert run(LogfmtParser(strict=True), line, stream) == (want if want_strict is None else want_strict)

    def test_documented_example(self):
        line = b'at=info method=GET path=/ host=grafana.net fwd="124.133.124.161" service=8ms status=200'
        assert run(LogfmtParser(), line) == {"at": "info", "method": "GET", "path": "/", "host": "grafana.net",
                                             "fwd": "124.133.124.161", "service": "8ms", "status": "200"}
        assert run(LogfmtParser(params=[("host", "host"), ("fwd_ip", "fwd")]), line) == \
            {"host": "grafana.net", "fwd_ip": "124.133.124.161"}

    @pytest.mark.parametrize("strict", [False, True])
    def test_keep_empty(self, strict):
        assert run(LogfmtParser(strict, False), b"foo bar=buzz", {"foo": "bar"}) == {"foo": "bar", "bar": "buzz"}
        assert run(LogfmtParser(strict, True), b"foo bar=buzz", {"foo": "bar"}) == \
            {"foo": "bar", "foo_extracted": "", "bar": "buzz"}
        assert run(LogfmtParser(strict, False), "foo=b\ufffdr bar=buzz".encode(), {"foo": "bar"}) == \
            {"foo": "bar", "bar": "buzz", "foo_extracted": "b r"}
        assert run(LogfmtParser(strict, True), b'a= b="" c', {}) == {"a": "", "b": "", "c": ""}

    def test_quoted_values(self):
        assert run(LogfmtParser(), b'a="x\\u00e9\\ud83d\\ude00" b="\\ud800z"') == {"a": "x\u00e9\U0001f600", "b": " z"}
        assert run(LogfmtParser(strict=True), b'a="x" b="unterminated')["__error_details__"] == \
            "logfmt syntax error at pos 22 : unterminated quoted value"
        assert run(LogfmtParser(strict=True), b'a="\\q" b=1')["__error_details__"] == \
            "logfmt syntax error at pos 7 : invalid quoted value"
        assert run(LogfmtParser(), b'a="\\q" b=1') == {"b": "1"}

    def test_invalid_utf8(self):
        assert run(LogfmtParser(), b"a=x\xffy b=2") == {"a": "x y", "b": "2"}
        assert run(LogfmtParser(), b"k\xff=1 b=2") == {"b": "2"}

    LINE = "app=foo level=error spaces=\"value with \u00dcFT8\U0001f44c\" ts=2021-02-12T19:18:10.037940878Z".encode()

    @pytest.mark.parametrize("params,stream,want", [
        ([("app", "app")], {}, {"app": "foo"}),
        ([("app", "app"), ("level", "level"), ("ts", "ts")], {},
         {"app": "foo", "level": "error", "ts": "2021-02-12T19:18:10.037940878Z"}),
        ([("test", "level")], {}, {"test": "error"}),
        ([("spaces", "spaces")], {}, {"spaces": "value with \u00dcFT8\U0001f44c"}),
        ([("nope", "nope")], {}, {"nope": ""}),
        ([("app", "app")], {"ap": "bar"}, {"ap": "bar", "app": "foo"}),
        ([("app", "app")], {"app": "bar"}, {"app": "bar", "app_extracted": "foo"}),
        ([("lvl", "level")], {"level": "debug"}, {"level": "debug", "lvl": "error"}),
    ])
    def test_expressions(self, params, stream, want):
        assert run(LogfmtParser(params=params), self.LINE, stream) == want

    def test_bad_expression(self):
        with pytest.raises(QueryError, match="cannot parse expression"):
            LogfmtParser(params=[("app", "field with space")])


# --------------------------------------------------------------------------
# | regexp, | pattern
# --------------------------------------------------------------------------

class TestRegexp:
    @pytest.mark.parametrize("pattern", ["w.*", "f(.*) (foo|bar|buzz)", "blah (.*) (?P<foo$>foo)(?P<bar>barr)",
                                         "blah (.*) (?P<foo>foo)(?P<foo>barr)", "(?P<1a>x)", "("])
    def test_rejected_patterns(self, pattern):
        with pytest.raises(QueryError):
            RegexpParser(pattern)

    def test_accepted_patterns(self):
        RegexpParser("blah (.*) (?P<foo>)")
        RegexpParser("(?<name>x)")

    @pytest.mark.parametrize("pattern,line,stream,want", [
        ("(?P<foo>foo|bar)buzz", b"blah", {"app": "foo"}, {"app": "foo"}),
        ("(?P<foo>.*)buzz", b"matchebuzz barbuzz", {"app": "bar"}, {"app": "bar", "foo": "matchebuzz bar"}),
        ("(?P<bar>bar)buzz", b"barbuzz", {"bar": "foo"}, {"bar": "foo", "bar_extracted": "bar"}),
        ("status=(?P<status>\\w+),latency=(?P<latency>\\w+)(ms|ns)", b"status=200,latency=500ms", {"app": "foo"},
         {"app": "foo", "status": "200", "latency": "500"}),
        ("(?P<a>x)|(?P<b>y)", b"y", {}, {"a": "", "b": "y"}),
        ("a(?P<v>.)b", b"a\xffb", {}, {"v": "\ufffd"}),
    ])
    def test_loki_cases(self, pattern, line, stream, want):
        assert run(RegexpParser(pattern), line, stream) == want

    def test_documented_example(self):
        p = RegexpParser("(?P<method>\\w+) (?P<path>[\\w|/]+) \\((?P<status>\\d+?)\\) (?P<duration>.*)")
        assert run(p, b"POST /api/prom/api/v1/query_range (200) 1.5s") == {
            "method": "POST", "path": "/api/prom/api/v1/query_range", "status": "200", "duration": "1.5s"}


class TestPattern:
    def test_documented_examples(self):
        line = (b'0.191.12.2 - - [10/Jun/2021:09:14:29 +0000] "GET /api/plugins/versioncheck HTTP/1.1" 200 2 "-" '
                b'"Go-http-client/2.0" "13.76.247.102, 34.120.177.193" "TLSv1.2" "US" ""')
        p = PatternParser('<ip> - - <_> "<method> <uri> <_>" <status> <size> <_> "<agent>" <_>')
        assert run(p, line) == {"ip": "0.191.12.2", "method": "GET", "uri": "/api/plugins/versioncheck",
                                "status": "200", "size": "2", "agent": "Go-http-client/2.0"}
        line = (b'level=debug ts=2021-06-10T09:24:13.472094048Z caller=logging.go:66 traceID=0568b66ad2d9294c '
                b'msg="POST /loki/api/v1/push (204) 16.652862ms"')
        p = PatternParser('<_> msg="<method> <path> (<status>) <latency>"')
        assert run(p, line) == {"method": "POST", "path": "/loki/api/v1/push", "status": "204",
                                "latency": "16.652862ms"}

    @pytest.mark.parametrize("pattern,line,stream,want", [
        ('<ip> <userid> <user> [<_>] "<method> <path> <_>" <status> <size>',
         b'127.0.0.1 user-identifier frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326',
         {"foo": "bar"}, {"foo": "bar", "ip": "127.0.0.1", "userid": "user-identifier", "user": "frank",
                          "method": "GET", "path": "/apache_pb.gif", "status": "200", "size": "2326"}),
        ('<_> msg="<method> <path> (<status>) <duration>"',
         b'level=debug ts=2021-05-19T07:54:26.864644382Z caller=logging.go:66 traceID=7fbb92fd0eb9c65d '
         b'msg="POST /loki/api/v1/push (204) 1.238734ms"', {"method": "bar"},
         {"method": "bar", "method_extracted": "POST", "path": "/loki/api/v1/push", "status": "204",
          "duration": "1.238734ms"}),
        ('foo <f>"', b"bar", {"method": "bar"}, {"method": "bar"}),
        ("<a> <b> <c>", b"1 2", {}, {"a": "1", "b": "2"}),   # partial: c is never reached
        ("<a>:<b>", b"x:y:z", {}, {"a": "x", "b": "y:z"}),     # shortest match for a
        ("<a> x", b"", {}, {}),
    ])
    def test_loki_cases(self, pattern, line, stream, want):
        assert run(PatternParser(pattern), line, stream) == want

    @pytest.mark.parametrize("pattern", ["", "<_> foo", "<a><b>", "<a> <a>", "plain text"])
    def test_invalid(self, pattern):
        with pytest.raises(QueryError):
            PatternParser(pattern)


# --------------------------------------------------------------------------
# | unpack
# --------------------------------------------------------------------------

class TestUnpack:
    def run_unpack(self, line: bytes, stream=None):
        lb = LabelsBuilder(stream or {})
        out, ok = UnpackParser().process(0, line, lb)
        assert ok
        return out, lb.labels()

    def test_loki_cases(self):
        msg = b'{"bar":1,"app":"foo","namespace":"prod","_entry":"some message","pod":{"uid":"1"}}'
        assert self.run_unpack(msg, {"cluster": "us-central1"}) == (
            b"some message", {"app": "foo", "namespace": "prod", "cluster": "us-central1"})
        assert self.run_unpack(msg, {"cluster": "us-central1", "app": "bar"}) == (
            b"some message", {"app": "bar", "app_extracted": "foo", "namespace": "prod", "cluster": "us-central1"})
        bad = b'"app":"foo","namespace":"prod","_entry":"some message","pod":{"uid":"1"}'
        assert self.run_unpack(bad) == (bad, {"__error__": "JSONParserErr",
                                              "__error_details__": "expecting json object(6), but it is not"})
        assert self.run_unpack(b"", {"cluster": "us-central1"}) == (b"", {"cluster": "us-central1"})
        assert self.run_unpack(b'["foo","bar"]', {"cluster": "us-central1"})[1] == {
            "__error__": "JSONParserErr", "__error_details__": "expecting json object(6), but it is not",
            "cluster": "us-central1"}
        unpacked = b'{"bar":1,"app":"foo","namespace":"prod","pod":{"uid":"1"}}'
        assert self.run_unpack(unpacked, {"app": "bar", "cluster": "us-central1"}) == (
            unpacked, {"app": "bar", "cluster": "us-central1"})
        escaped = (b'{"_entry":"I0303 17:49:45.976518    1526 kubelet_getters.go:178] \\"Pod status updated\\" '
                   b'pod=\\"openshift-etcd/etcd\\" status=Running"}')
        assert self.run_unpack(escaped)[0] == (b'I0303 17:49:45.976518    1526 kubelet_getters.go:178] '
                                               b'"Pod status updated" pod="openshift-etcd/etcd" status=Running')
        assert self.run_unpack(b'{"foo.bar":"10ms","test-dash":"foo","_entry":"some message"}', {"foo": "bar"}) == (
            b"some message", {"foo": "bar", "foo_bar": "10ms", "test_dash": "foo"})

    def test_malformed(self):
        assert self.run_unpack(b'{"a":"x","_entry":"y"')[1]["__error__"] == "JSONParserErr"
        assert self.run_unpack(b'{"_entry":"bad \\q"}')[1]["__error_details__"] == \
            "Encountered an invalid escape sequence in a string"


def test_sanitize_label_key():
    assert sanitize_label_key(" 1a-b.c ") == "_1a_b_c"
    assert sanitize_label_key("\u00e9t\u00e9") == "_t_"
    assert sanitize_label_key("   ") == ""


# --------------------------------------------------------------------------
# Properties: never raise; fast JSON path == exact scanner
# --------------------------------------------------------------------------

PARSERS = [
    JSONParser(), JSONParser([("a", "a.b[0]"), ("c", '["c d"]')]), LogfmtParser(), LogfmtParser(strict=True),
    LogfmtParser(keep_empty=True, params=[("x", "a")]), RegexpParser("(?P<a>[a-z]+)=(?P<b>\\S*)"),
    PatternParser("<a> <_> <b>"), UnpackParser(),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=5), json_values, max_size=5).map(
    lambda d: json.dumps(d, ensure_ascii=False).encode())
json_objects_escaped = st.dictionaries(st.text(max_size=5), json_values, max_size=5).map(
    lambda d: json.dumps(d, ensure_ascii=True).encode())


def _mutate(data: bytes, cut: int, junk: bytes) -> bytes:
    cut = cut % (len(data) + 1)
    return data[:cut] + junk + data[cut:]


hostile_lines = st.one_of(
    st.binary(max_size=64),
    json_objects,
    st.tuples(json_objects, st.integers(0, 200), st.binary(max_size=3)).map(lambda t: _mutate(*t)),
    st.text(alphabet='a= "\\\t\u00e9{}[],:u0', max_size=40).map(lambda s: s.encode()),
)


@given(hostile_lines, st.dictionaries(st.sampled_from(["a", "b", "app"]), st.text(max_size=3), max_size=2))
def test_parsers_never_raise(line, stream):
    for parser in PARSERS:
        lb = LabelsBuilder(stream)
        out, ok = parser.process(0, line, lb)
        assert ok and isinstance(out, bytes)
        lb._check()
        for k, v in lb.labels().items():
            assert isinstance(k, str) and isinstance(v, str)


@given(st.one_of(json_objects, json_objects_escaped,
                 st.tuples(json_objects, st.integers(0, 200), st.binary(max_size=3)).map(lambda t: _mutate(*t))))
def test_json_fast_path_matches_exact_scanner(line):
    parser = JSONParser()
    fast = LabelsBuilder({"a": "s"})
    parser.process(0, line, fast)
    exact = LabelsBuilder({"a": "s"})
    parser._scan(line, exact)
    assert fast.labels() == exact.labels()


logfmt_lines = st.one_of(
    st.binary(max_size=40),
    st.text(alphabet='ab= "\\\tnu\u00e9\ufffd', max_size=30).map(lambda s: s.encode()),
    st.lists(st.tuples(st.text(alphabet="ab.-_\u00e9", min_size=1, max_size=4),
                       st.one_of(st.none(), st.text(alphabet='xy "\\=', max_size=5))), max_size=5).map(
        lambda pairs: " ".join(k if v is None else f"{k}={json.dumps(v) if ' ' in v else v}" for k, v in pairs).encode()),
)


@given(logfmt_lines)
def test_logfmt_fast_path_matches_exact_decoder(line):
    from chunkstore.logql._decoders import _logfmt_exact, _logfmt_fast

    fast = _logfmt_fast(line)
    if fast is not None:
        assert (fast, None) == _logfmt_exact(line, True) == _logfmt_exact(line, False)


class _NeverDecodes:
    def decode(self, _text):
        raise ValueError("forced")


json_paths = st.lists(st.one_of(st.sampled_from(["a", "b", "", "c d"]), st.integers(0, 2)), min_size=1, max_size=3)


def _path_text(path) -> str:
    out = ""
    for c in path:
        out += f"[{c}]" if isinstance(c, int) else f'["{c}"]'
    return out


@given(st.one_of(json_objects, json_objects_escaped,
                 st.recursive(st.integers() | st.text(max_size=3),
                              lambda ch: st.lists(ch, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "c d"]), ch, max_size=3),
                              max_leaves=10).map(lambda v: json.dumps(v).encode())),
       st.lists(json_paths, min_size=1, max_size=3))
def test_json_expression_fast_path_matches_exact_scanner(line, paths):
    import chunkstore.logql.parsers as parsers_module

    parser = JSONParser([(f"l{i}", _path_text(p)) for i, p in enumerate(paths)])
    fast = LabelsBuilder({"l0": "s"})
    parser.process(0, line, fast)
    saved = parsers_module._DECODER
    parsers_module._DECODER = _NeverDecodes()
    try:
        exact = LabelsBuilder({"l0": "s"})
        parser.process(0, line, exact)
    finally:
        parsers_module._DECODER = saved
    assert fast.labels() == exact.labels()


@pytest.mark.parametrize("expression,message", [
    ("field with space", "unexpected FIELD"),
    ('"pod"]', "unexpected STRING, expecting LSB or FIELD"),
    ('["pod"', "unexpected $end, expecting RSB"),
    ('["pod""uuid"]', "unexpected STRING, expecting RSB"),
    ("pod..uuid", "unexpected DOT, expecting FIELD"),
])
def test_json_expression_error_messages(expression, message):
    with pytest.raises(QueryError) as info:
        JSONParser([("app", expression)])
    assert str(info.value) == f"cannot parse expression [{expression}]: syntax error: {message}"
