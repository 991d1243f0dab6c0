"""V1's signatures: the request's `authToken` and the answer's `Body-Sign`, against the
contract's derived vectors, and the same values (and V2's basic signature) computed by the
JDK's own `javax.crypto.Mac` (the marketplace's side is Java)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from identity.errors import InvalidParameter, SignatureError
from identity.marketplace import v1
from identity.marketplace.signing import Kind, sign

KEY = "TestAccessKey-0123456789"
STAMP = "20170725025113409"
PARAMS = {
    "activity": "newInstance",
    "orderId": "CS1906666688ABCDE",
    "testFlag": "1",
    "timeStamp": STAMP,
}
TOKEN = "g3u6xAVT7S09JnVjGN82p/qacAt6uoPlCPtTJzCmXQU="
ANSWER = b'{"resultCode":"000000","resultMsg":"success."}'
SIGNED_ANSWER = b'sign_type="HMAC-SHA256", signature="0nkYoBuwtv3R98vgxpcsJGJQKW8nSlqAnoQfyy6vVH0="'
STAMP_MS = 1500951073409  # 2017-07-25T02:51:13.409Z
V2_NONCE = "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA"
V2_TIMESTAMP = "1680508066618"
V2_BODY = (
    '{"activity":"newInstance","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8",'
    '"orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}'
)


def test_the_contracts_v1_vectors() -> None:
    text = v1.signed_text(PARAMS | {"authToken": "left out"}, skip_blank=False)
    assert text == "activity=newInstance&orderId=CS1906666688ABCDE&testFlag=1&timeStamp=" + STAMP
    assert v1.auth_token(KEY, STAMP, text) == TOKEN
    assert v1.body_sign(KEY, ANSWER) == SIGNED_ANSWER


def test_a_kit_body_skips_blank_fields_and_writes_numbers_as_text() -> None:
    body = {"flag": 1, "name": "  ", "tenantId": "t-1", "domainName": None, "timeStamp": STAMP}
    assert v1.signed_text(body, skip_blank=True) == f"flag=1&tenantId=t-1&timeStamp={STAMP}"
    # A basic GET keeps them: its values are the query's text, blank or not.
    assert v1.signed_text({"a": "", "b": "x"}, skip_blank=False) == "a=&b=x"


@pytest.mark.parametrize(
    ("token", "stamp", "now_ms", "message"),
    [
        (TOKEN, STAMP, STAMP_MS, None),
        (TOKEN, STAMP, STAMP_MS + 59_000, None),
        (TOKEN, STAMP, STAMP_MS + 61_000, "window"),
        (TOKEN.lower(), STAMP, STAMP_MS, "does not match"),  # case-sensitive
        ("", STAMP, STAMP_MS, "missing"),
        (TOKEN, STAMP[:-3], STAMP_MS, "yyyyMMddHHmmssSSS"),
        (TOKEN, "2017-07-25 02:51", STAMP_MS, "yyyyMMddHHmmssSSS"),
    ],
)
def test_an_auth_token_is_checked_with_its_time_stamp(
    token: str, stamp: str, now_ms: int, message: str | None
) -> None:
    fields = PARAMS | {"timeStamp": stamp}
    if message is None:
        assert v1.check(KEY, fields, token, skip_blank=False, now_ms=now_ms, window_ms=60_000)
        return
    with pytest.raises(SignatureError, match=message):
        v1.check(KEY, fields, token, skip_blank=False, now_ms=now_ms, window_ms=60_000)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"activity": "newInstance", "orderId": "O1", "businessId": "B1", "customerId": "c"},
         {"activity": "newInstance", "orderId": "O1", "orderLineId": "O1", "businessId": "B1"}),
        ({"activity": "expireInstance", "instanceId": "I1", "testFlag": "1"},
         {"activity": "updateInstanceStatus", "instanceId": "I1", "status": "FREEZE",
          "testFlag": "1"}),
        ({"activity": "upgrade", "instanceId": "I1", "orderId": "O2", "skuCode": "s"},
         {"activity": "upgradeInstance", "instanceId": "I1", "orderId": "O2",
          "orderLineId": "O2"}),
        ({"activity": "refreshInstance", "instanceId": "I1", "orderId": "O3",
          "expireTime": "20270101000000", "trialToFormal": "1"},
         {"activity": "refreshInstance", "instanceId": "I1", "orderId": "O3", "orderLineId": "O3",
          "expireTime": "20270101000000", "scene": "TRIAL_TO_FORMAL"}),
        ({"activity": "releaseInstance", "instanceId": "I1", "orderId": "O1"},
         {"activity": "releaseInstance", "instanceId": "I1", "orderId": "O1"}),
        ({"activity": "queryInstance", "instanceId": "I1,I2"},
         {"activity": "queryInstance", "instanceId": "I1,I2"}),
    ],
)  # fmt: skip
def test_a_v1_basic_call_is_the_v2_call_it_stands_for(
    fields: dict[str, str], expected: dict[str, str]
) -> None:
    assert v1.as_v2(fields) == expected


def test_an_unknown_activity_or_a_repeated_parameter_is_malformed() -> None:
    with pytest.raises(InvalidParameter):
        v1.as_v2({"activity": "updateInstanceStatus"})  # a V2 name, not V1's
    with pytest.raises(InvalidParameter):
        v1.query_fields([("a", "1"), ("a", "2")])


JAVA = r"""
import java.util.Base64;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public class V1Check {
    static String mac(String key, byte[] data) throws Exception {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key.getBytes("UTF-8"), "HmacSHA256"));
        return Base64.getEncoder().encodeToString(mac.doFinal(data));
    }

    static String hex(String key, byte[] data) throws Exception {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key.getBytes("UTF-8"), "HmacSHA256"));
        StringBuilder out = new StringBuilder();
        for (byte b : mac.doFinal(data)) out.append(String.format("%02x", b));
        return out.toString();
    }

    public static void main(String[] args) throws Exception {
        System.out.println(mac(args[0] + args[1], args[2].getBytes("UTF-8")));
        System.out.println(mac(args[0], args[3].getBytes("UTF-8")));
        // V2 basic: Hex(HMAC(key, key + nonce + timestamp + Hex(HMAC(key, body))))
        String inner = hex(args[4], args[7].getBytes("UTF-8"));
        System.out.println(hex(args[4], (args[4] + args[5] + args[6] + inner).getBytes("UTF-8")));
    }
}
"""


@pytest.mark.skipif(shutil.which("java") is None, reason="no JDK on this machine")
def test_the_jdks_mac_gives_the_same_signatures(tmp_path: Path) -> None:
    """`java V1Check.java` (the JDK runs a single source file): its HMAC-SHA256, Base64, of a
    text that holds non-ASCII, for the request and for the answer."""
    source = tmp_path / "V1Check.java"
    source.write_text(JAVA)
    fields = PARAMS | {"customerName": "张三 & co"}
    text = v1.signed_text(fields, skip_blank=False)
    answer = '{"resultCode":"000000","resultMsg":"成功"}'
    v2 = [KEY, V2_NONCE, V2_TIMESTAMP, V2_BODY]
    done = subprocess.run(  # noqa: S603 - our own argv
        ["java", str(source), KEY, STAMP, text, answer, *v2],  # noqa: S607 - the JDK on PATH
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    token, signature, v2_signature = done.stdout.split()
    assert token == v1.auth_token(KEY, STAMP, text)
    assert f'signature="{signature}"'.encode() in v1.body_sign(KEY, answer.encode())
    # V2's basic signature (the contract's vector A) comes out the same from the JDK.
    assert v2_signature == sign(Kind.BASIC, KEY, V2_NONCE, V2_TIMESTAMP, V2_BODY.encode())
    assert v2_signature == "c3e0739f9f9ac29f41d171ebc4882300bb9b6be2290f8ebd13d0b4e20f85b6d2"
