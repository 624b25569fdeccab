"""Real Binance clients, unchanged, against `listenkeyd sim` (Binance as it is today).

Usage: real_clients.py SIM_URL API_KEY SECRET

Each client is pointed at the simulator only through its documented base-URL
setting (or, for python-binance, a subclass that sets its URL class
attributes), then runs its user-data calls: construction with the default ping,
server time, create / keep alive / close for every live listen-key family,
listen tokens (cross and isolated, signed and unsigned), the margin risk
stream, and the retired endpoints, which must fail with HTTP 410. Then the
user-data WebSockets: python-binance's futures user socket (USD-M listen key
on /private/ws), its spot user socket (WebSocket API signature subscription)
and its margin socket (listen-token subscription), the official
binance-sdk-spot WebSocket API signature subscription, and the official USD-M,
COIN-M and margin (risk data) SDKs' user-data streams, each receiving an event
the simulator is told to send (`POST /_sim/events`). Every call's
outcome is asserted; the last line is "N passed, M failed" and the exit status
is non-zero when anything failed. The simulator's request log (`GET
/_sim/requests`) is used to check what went over the wire.
"""

import asyncio
import json
import sys
import time
import traceback
import urllib.request
import warnings

SIM, API_KEY, SECRET = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
SYMBOL = "BTCUSDT"
passed, failed = 0, 0


def check(name, fn):
    """Runs one check; an exception or a failed assert counts as a failure."""
    global passed, failed
    try:
        fn()
        passed += 1
        print(f"ok   {name}")
    except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
        failed += 1
        print(f"FAIL {name}: {type(e).__name__}: {e}")
        traceback.print_exc(limit=3)


def sim_requests():
    """The simulator's request log."""
    with urllib.request.urlopen(f"{SIM}/_sim/requests", timeout=5) as r:
        return json.load(r)


def clear_requests():
    req = urllib.request.Request(f"{SIM}/_sim/requests", method="DELETE")
    urllib.request.urlopen(req, timeout=5).read()


def live_values():
    """Every live listen key and token on the simulator."""
    with urllib.request.urlopen(f"{SIM}/_sim/keys", timeout=5) as r:
        return {c["value"]: c for c in json.load(r)}


def empty(answer):
    assert answer == {}, f"expected {{}}, got {answer!r}"


def near_now(ms):
    assert abs(int(ms) - time.time() * 1000) < 60_000, f"server time {ms} is not now"


def is_key(k):
    assert isinstance(k, str) and len(k) >= 20, f"not a listen key: {k!r}"
    assert k in live_values(), "the key is not live on the simulator"


def last_request(method, path):
    reqs = [r for r in sim_requests() if r["method"] == method and r["path"] == path]
    assert reqs, f"no {method} {path} reached the simulator"
    return reqs[-1]


def expect_status(status, fn):
    """`fn` must fail, and the failure must carry HTTP `status`."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - each client raises its own type
        code = getattr(e, "status_code", None) or getattr(e, "status", None)
        text = str(e)
        assert code == status or f"{status}" in text, f"expected HTTP {status}, got {type(e).__name__}: {text}"
        return
    raise AssertionError(f"expected HTTP {status}, the call succeeded")


# ---------------------------------------------------------------- python-binance
def python_binance():
    import binance

    class SimClient(binance.Client):
        """python-binance with its documented URL attributes pointed at the simulator."""

        API_URL = SIM + "/api"
        MARGIN_API_URL = SIM + "/sapi"
        FUTURES_URL = SIM + "/fapi"
        FUTURES_COIN_URL = SIM + "/dapi"
        OPTIONS_URL = SIM + "/eapi"
        PAPI_URL = SIM + "/papi"

    holder = {}

    def construct():
        clear_requests()
        holder["c"] = SimClient(API_KEY, SECRET)  # the default constructor pings
        last_request("GET", "/api/v3/ping")

    check("python-binance: the constructor's ping", construct)
    c = holder.get("c")
    if c is None:
        return
    check("python-binance: ping", lambda: empty(c.ping()))
    check("python-binance: server time", lambda: near_now(c.get_server_time()["serverTime"]))
    check("python-binance: usdm ping and time", lambda: (c.futures_ping(), near_now(c.futures_time()["serverTime"])))
    check(
        "python-binance: coinm ping and time",
        lambda: (c.futures_coin_ping(), near_now(c.futures_coin_time()["serverTime"])),
    )
    check("python-binance: options ping and time", lambda: (c.options_ping(), near_now(c.options_time()["serverTime"])))
    check("python-binance: portfolio-margin ping", lambda: empty(c.papi_ping()))

    def family(get, keep, close, path):
        def run():
            k = get()
            is_key(k)
            keep(k)
            last_request("PUT", path)
            close(k)
            last_request("DELETE", path)
            assert k not in live_values(), "closed"

        return run

    check(
        "python-binance: usdm listen key create/keepalive/close",
        family(c.futures_stream_get_listen_key, c.futures_stream_keepalive, c.futures_stream_close, "/fapi/v1/listenKey"),
    )
    check(
        "python-binance: coinm listen key create/keepalive/close",
        family(
            c.futures_coin_stream_get_listen_key,
            c.futures_coin_stream_keepalive,
            c.futures_coin_stream_close,
            "/dapi/v1/listenKey",
        ),
    )
    check(
        "python-binance: portfolio-margin listen key create/keepalive/close",
        family(c.papi_stream_get_listen_key, c.papi_stream_keepalive, c.papi_stream_close, "/papi/v1/listenKey"),
    )

    def token(**kw):
        def run():
            t = c.margin_create_listen_token(validity=3_600_000, **kw)
            assert t["token"] in live_values(), "the token is live"
            assert abs(t["expirationTime"] - time.time() * 1000 - 3_600_000) < 60_000, t
            req = last_request("POST", "/sapi/v1/userListenToken")
            assert "signature" in req["params"], "python-binance signs it, and the simulator checked it"

        return run

    check("python-binance: cross-margin listen token (signed)", token())
    check("python-binance: isolated-margin listen token (signed)", token(symbol=SYMBOL, is_isolated=True))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for name, call in [
            ("spot listen key", c.stream_get_listen_key),
            ("cross-margin listen key", c.margin_stream_get_listen_key),
            ("isolated-margin listen key", lambda: c.isolated_margin_stream_get_listen_key(SYMBOL)),
            ("cross-margin keepalive", lambda: c.margin_stream_keepalive("retired-key")),
        ]:
            check(f"python-binance: retired {name} answers 410", lambda call=call: expect_status(410, call))


# ---------------------------------------------------------------- Binance's official SDKs
def official_sdks():
    from binance_common.configuration import ConfigurationRestAPI

    def config():
        return ConfigurationRestAPI(api_key=API_KEY, api_secret=SECRET, base_path=SIM, retries=0, timeout=5000)

    def lifecycle(label, api, path, close_takes_key=False):
        def run():
            api.test_connectivity()
            last_request("GET", path.rsplit("/", 1)[0] + "/ping")
            if hasattr(api, "check_server_time"):
                near_now(api.check_server_time().data().server_time)
            k = api.start_user_data_stream().data().listen_key
            is_key(k)
            api.keepalive_user_data_stream()
            last_request("PUT", path)
            api.close_user_data_stream()
            last_request("DELETE", path)
            assert k not in live_values(), "closed"

        check(f"official SDK {label}: ping, time, listen key create/keepalive/close", run)

    from binance_sdk_derivatives_trading_usds_futures import DerivativesTradingUsdsFutures
    from binance_sdk_derivatives_trading_coin_futures import DerivativesTradingCoinFutures
    from binance_sdk_derivatives_trading_portfolio_margin import DerivativesTradingPortfolioMargin
    from binance_sdk_derivatives_trading_options import DerivativesTradingOptions
    from binance_sdk_margin_trading import MarginTrading

    lifecycle("usds-futures", DerivativesTradingUsdsFutures(config_rest_api=config()).rest_api, "/fapi/v1/listenKey")
    lifecycle("coin-futures", DerivativesTradingCoinFutures(config_rest_api=config()).rest_api, "/dapi/v1/listenKey")
    lifecycle(
        "portfolio-margin",
        DerivativesTradingPortfolioMargin(config_rest_api=config()).rest_api,
        "/papi/v1/listenKey",
    )
    lifecycle("options", DerivativesTradingOptions(config_rest_api=config()).rest_api, "/eapi/v1/listenKey")

    def options_expiration():
        api = DerivativesTradingOptions(config_rest_api=config()).rest_api
        answer = api.start_user_data_stream().data()
        with urllib.request.urlopen(f"{SIM}/_sim/keys", timeout=5) as r:
            live = {c["value"]: c for c in json.load(r) if c["scope"] == "options"}
        assert answer.listen_key in live, "an options key is live"
        assert answer.expiration == live[answer.listen_key]["expires_at_ms"], answer

    check("official SDK options: the create answer states its expiration", options_expiration)

    margin = MarginTrading(config_rest_api=config()).rest_api

    def risk(version):
        start, keep, close = (
            (margin.start_user_data_stream, margin.keepalive_user_data_stream, margin.close_user_data_stream)
            if version == 1
            else (margin.start_user_data_stream_v2, margin.keepalive_user_data_stream_v2, margin.close_user_data_stream_v2)
        )
        path = f"/sapi/v{version}/margin/listen-key"

        def run():
            k = start().data().listen_key
            is_key(k)
            assert live_values()[k]["scope"] == "margin-risk"
            keep(listen_key=k)
            assert last_request("PUT", path)["params"].get("listenKey") == k
            close()
            last_request("DELETE", path)
            assert k not in live_values(), "closed"

        return run

    check("official SDK margin-trading: risk data stream create/keepalive/close (v1)", risk(1))
    check("official SDK margin-trading: risk data stream create/keepalive/close (v2)", risk(2))


# ---------------------------------------------------------------- ccxt
def ccxt_binance():
    import ccxt
    from urllib.parse import urlsplit

    ex = ccxt.binance({"apiKey": API_KEY, "secret": SECRET, "enableRateLimit": False, "timeout": 5000})

    def point(urls):
        """Every URL of ccxt's documented `urls["api"]` map, on the simulator, path kept."""
        if isinstance(urls, dict):
            return {k: point(v) for k, v in urls.items()}
        if isinstance(urls, str) and urls.startswith("http"):
            return SIM + urlsplit(urls).path
        return urls

    ex.urls["api"] = point(ex.urls["api"])

    check("ccxt: spot ping and time", lambda: (ex.publicGetPing(), near_now(ex.publicGetTime()["serverTime"])))
    check("ccxt: usdm ping and time", lambda: (ex.fapiPublicGetPing(), near_now(ex.fapiPublicGetTime()["serverTime"])))
    check("ccxt: coinm ping and time", lambda: (ex.dapiPublicGetPing(), near_now(ex.dapiPublicGetTime()["serverTime"])))
    check(
        "ccxt: options ping and time", lambda: (ex.eapiPublicGetPing(), near_now(ex.eapiPublicGetTime()["serverTime"]))
    )
    check("ccxt: portfolio-margin ping", lambda: empty(ex.papiGetPing()))

    def family(post, put, delete, path):
        def run():
            k = post()["listenKey"]
            is_key(k)
            put({"listenKey": k})
            last_request("PUT", path)
            delete({"listenKey": k})
            last_request("DELETE", path)
            assert k not in live_values(), "closed"

        return run

    check(
        "ccxt: usdm listen key create/keepalive/close",
        family(ex.fapiPrivatePostListenKey, ex.fapiPrivatePutListenKey, ex.fapiPrivateDeleteListenKey, "/fapi/v1/listenKey"),
    )
    check(
        "ccxt: coinm listen key create/keepalive/close",
        family(ex.dapiPrivatePostListenKey, ex.dapiPrivatePutListenKey, ex.dapiPrivateDeleteListenKey, "/dapi/v1/listenKey"),
    )
    check(
        "ccxt: portfolio-margin listen key create/keepalive/close",
        family(ex.papiPostListenKey, ex.papiPutListenKey, ex.papiDeleteListenKey, "/papi/v1/listenKey"),
    )
    check(
        "ccxt: options listen key create/keepalive/close",
        family(ex.eapiPrivatePostListenKey, ex.eapiPrivatePutListenKey, ex.eapiPrivateDeleteListenKey, "/eapi/v1/listenKey"),
    )

    def token(params):
        def run():
            t = ex.sapiPostUserListenToken(params)
            assert t["token"] in live_values(), "the token is live"
            assert int(t["expirationTime"]) > time.time() * 1000, t
            last_request("POST", "/sapi/v1/userListenToken")

        return run

    check("ccxt: cross-margin listen token", token({}))
    check("ccxt: isolated-margin listen token", token({"symbol": SYMBOL, "isIsolated": "true"}))
    check("ccxt: retired spot listen key answers 410", lambda: expect_status(410, ex.publicPostUserDataStream))
    check("ccxt: retired cross-margin listen key answers 410", lambda: expect_status(410, ex.sapiPostUserDataStream))
    check(
        "ccxt: retired isolated-margin listen key answers 410",
        lambda: expect_status(410, lambda: ex.sapiPostUserDataStreamIsolated({"symbol": SYMBOL})),
    )


# ---------------------------------------------------------------- user-data WebSockets
WS = SIM.replace("http://", "ws://", 1)
WAIT = 5  # seconds any one event may take to arrive


def emit(scope, kind):
    """Has the simulator send one `kind` event to every subscription of `scope`."""
    body = json.dumps({"scope": scope, "type": kind}).encode()
    req = urllib.request.Request(f"{SIM}/_sim/events", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        answer = json.load(r)
    assert answer["connections"] >= 1, f"no connection open to get it: {answer}"


def ws_log(what):
    """The simulator's WebSocket log entries of one kind."""
    with urllib.request.urlopen(f"{SIM}/_sim/ws/log", timeout=5) as r:
        return [e for e in json.load(r) if e["what"] == what]


def websockets():
    from binance import AsyncClient, BinanceSocketManager

    class SimAsyncClient(AsyncClient):
        """python-binance's async client with its URL attributes, WebSocket API's included, on the simulator."""

        API_URL = SIM + "/api"
        MARGIN_API_URL = SIM + "/sapi"
        FUTURES_URL = SIM + "/fapi"
        FUTURES_COIN_URL = SIM + "/dapi"
        OPTIONS_URL = SIM + "/eapi"
        PAPI_URL = SIM + "/papi"
        WS_API_URL = WS + "/ws-api/v3"

    class SimSocketManager(BinanceSocketManager):
        """python-binance's socket manager with its stream base URLs on the simulator."""

        STREAM_URL = WS + "/"
        FSTREAM_URL = WS + "/"
        DSTREAM_URL = WS + "/"

    async def python_binance_socket(open_socket, scope, kind):
        client = await SimAsyncClient.create(API_KEY, SECRET)
        try:
            async with open_socket(SimSocketManager(client)) as socket:
                emit(scope, kind)
                event = await asyncio.wait_for(socket.recv(), WAIT)
                assert event.get("e") == kind, f"expected {kind}, got {event!r}"
                assert isinstance(event.get("E"), int), event
        finally:
            await client.close_connection()

    def run(coro):
        return lambda: asyncio.run(coro())

    check(
        "python-binance: futures_user_socket (USD-M listen key on /private/ws) receives ORDER_TRADE_UPDATE",
        run(lambda: python_binance_socket(lambda bm: bm.futures_user_socket(), "usdm-futures", "ORDER_TRADE_UPDATE")),
    )
    check(
        "python-binance: user_socket (WebSocket API, signature) receives executionReport",
        run(lambda: python_binance_socket(lambda bm: bm.user_socket(), "spot", "executionReport")),
    )
    check(
        "python-binance: margin_socket (WebSocket API, listen token) receives balanceUpdate",
        run(lambda: python_binance_socket(lambda bm: bm.margin_socket(), "cross-margin", "balanceUpdate")),
    )

    async def official_spot_signature():
        from binance_common.configuration import ConfigurationWebSocketAPI
        from binance_sdk_spot.spot import Spot

        config = ConfigurationWebSocketAPI(
            api_key=API_KEY, api_secret=SECRET, stream_url=WS + "/ws-api/v3", timeout=5000
        )
        connection = await Spot(config_ws_api=config).websocket_api.create_connection()
        try:
            got = asyncio.get_running_loop().create_future()
            subscription = await connection.user_data_stream_subscribe_signature()
            subscription.stream.on("message", lambda data: got.done() or got.set_result(data))
            emit("spot", "executionReport")
            event = (await asyncio.wait_for(got, WAIT)).actual_instance
            assert type(event).__name__ == "ExecutionReport", f"not parsed as an executionReport: {event!r}"
            assert event.s == "BTCUSDT" and isinstance(event.E, int), event
        finally:
            await connection.close_connection()
        assert any("signed" in e["detail"] for e in ws_log("subscribe")), "the simulator saw no signed subscription"

    check("official SDK spot: WebSocket API signature subscription receives executionReport", run(official_spot_signature))

    def official_stream(sdk, create_key, open_stream, scope, kind, model):
        async def go():
            from binance_common.configuration import ConfigurationRestAPI, ConfigurationWebSocketStreams

            rest = ConfigurationRestAPI(api_key=API_KEY, api_secret=SECRET, base_path=SIM, retries=0, timeout=5000)
            client = sdk(config_rest_api=rest, config_ws_streams=ConfigurationWebSocketStreams(stream_url=WS))
            key = create_key(client.rest_api)
            connection = await client.websocket_streams.create_connection()
            try:
                got = asyncio.get_running_loop().create_future()
                handle = await open_stream(connection, key)
                handle.on("message", lambda data: got.done() or got.set_result(data))
                emit(scope, kind)
                event = (await asyncio.wait_for(got, WAIT)).actual_instance
                assert type(event).__name__ == model, f"not parsed as a {model}: {event!r}"
                assert isinstance(event.E, int), event
            finally:
                await connection.close_connection()

        return go

    from binance_sdk_derivatives_trading_usds_futures import DerivativesTradingUsdsFutures
    from binance_sdk_derivatives_trading_coin_futures import DerivativesTradingCoinFutures
    from binance_sdk_margin_trading import MarginTrading

    check(
        "official SDK usds-futures: user data stream (/private/stream, SUBSCRIBE) receives ORDER_TRADE_UPDATE",
        run(
            official_stream(
                DerivativesTradingUsdsFutures,
                lambda api: api.start_user_data_stream().data().listen_key,
                lambda c, key: c.user_data(key),
                "usdm-futures",
                "ORDER_TRADE_UPDATE",
                "OrderTradeUpdate",
            )
        ),
    )
    check(
        "official SDK coin-futures: user data stream (/stream, SUBSCRIBE) receives ACCOUNT_UPDATE",
        run(
            official_stream(
                DerivativesTradingCoinFutures,
                lambda api: api.start_user_data_stream().data().listen_key,
                lambda c, key: c.user_data(key),
                "coinm-futures",
                "ACCOUNT_UPDATE",
                "AccountUpdate",
            )
        ),
    )
    check(
        "official SDK margin-trading: risk data stream (/stream, SUBSCRIBE) receives MARGIN_LEVEL_STATUS_CHANGE",
        run(
            official_stream(
                MarginTrading,
                lambda api: api.start_user_data_stream().data().listen_key,
                lambda c, key: c.risk_data(key),
                "margin-risk",
                "MARGIN_LEVEL_STATUS_CHANGE",
                "MarginLevelStatusChange",
            )
        ),
    )
    def no_full_key():
        subscriptions = ws_log("subscribe")
        assert subscriptions, "no subscription was logged"
        assert not [e for e in subscriptions if API_KEY in e["detail"]], "the WebSocket log shows a full API key"

    check("WebSocket log: subscriptions logged with fingerprints only", no_full_key)


for suite in (python_binance, official_sdks, ccxt_binance, websockets):
    check(f"{suite.__name__}: imports and set-up", suite)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
