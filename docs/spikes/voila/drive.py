"""Drive the spike hub with headless Chromium: two viewers, spoofing, 403, websockets, timing."""
import asyncio, json, os, sys, time, uuid, glob
import websockets
from playwright.async_api import async_playwright

PUB = f"http://127.0.0.1:{os.environ['SPIKE_PORT_PUBLIC']}"
WS = PUB.replace("http", "ws")
PW = os.environ["SPIKE_PASSWORD"]
R = {}
IDS = ["viewer", "token", "api-owner", "kernel-id", "query", "preheat-wait", "uid", "hub-env", "svc-token-on-hub", "parent-environ-has-hub-token"]


async def login(browser, user, headers=None):
    ctx = await browser.new_context(extra_http_headers=headers or {})
    page = await ctx.new_page()
    await page.goto(f"{PUB}/hub/login")
    await page.fill("#username_input", user)
    await page.fill("#password_input", PW)
    await page.click("#login_submit")
    await page.wait_for_url("**/hub/**")
    return ctx, page


async def render(page, path, shot=None):
    t0 = time.perf_counter()
    resp = await page.goto(f"{PUB}{path}", timeout=120_000)
    await page.wait_for_selector("#viewer", timeout=120_000)
    dt = time.perf_counter() - t0
    rows = {i: await page.inner_text(f"[id='{i}']") for i in IDS}
    # widget rendered and works over comms?
    try:
        await page.click("text=ping", timeout=20_000)
        await page.wait_for_function("() => [...document.querySelectorAll('.widget-label')].some(e => e.textContent === '1')", timeout=10_000)
        rows["widget"] = "comm ok"
    except Exception as e:
        rows["widget"] = f"failed {e!r}"[:120]
    if shot:
        await page.screenshot(path=f"/tmp/voila-spike/shots/{shot}.png", full_page=True)
    rows["seconds"] = round(dt, 2)
    return rows


async def kernel_ws(cookies, kid, msgs, wait=3.0, path="dash"):
    """Connect to a kernel's channels as the holder of `cookies`; send msgs; collect replies."""
    hdr = {"Cookie": "; ".join(f"{c['name']}={c['value']}" for c in cookies)} if cookies else {}
    url = f"{WS}/services/{path}/api/kernels/{kid}/channels?session_id={uuid.uuid4()}"
    got = []
    try:
        async with websockets.connect(url, additional_headers=hdr, open_timeout=10) as ws:
            for m in msgs:
                await ws.send(json.dumps(m))
            end = time.time() + wait
            while time.time() < end:
                try:
                    got.append(json.loads(await asyncio.wait_for(ws.recv(), end - time.time())))
                except (asyncio.TimeoutError, TimeoutError):
                    break
    except Exception as e:
        return f"connect failed: {e!r}"[:200]
    return [(g["channel"], g["msg_type"], (g.get("parent_header") or {}).get("msg_id")) for g in got]


def msg(mtype, content, channel="shell"):
    return {"header": {"msg_id": mtype + "-" + uuid.uuid4().hex[:6], "msg_type": mtype, "username": "x",
                       "session": "s", "date": "", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "content": content, "channel": channel, "buffers": []}


async def query_listen(kid, seconds):
    """An outsider (no cookie at all) on /voila/query/<kernel_id> through the public proxy."""
    try:
        async with websockets.connect(f"{WS}/services/dash/voila/query/{kid}", open_timeout=10) as ws:
            try:
                return "connected; received: " + (await asyncio.wait_for(ws.recv(), seconds))
            except (asyncio.TimeoutError, TimeoutError):
                return "connected; nothing received"
    except Exception as e:
        return f"refused: {e!r}"[:200]


async def main(which):
    os.makedirs("/tmp/voila-spike/shots", exist_ok=True)
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        if which in ("all", "identity"):
            a_ctx, a = await login(b, "alice")
            b_ctx, bp = await login(b, "bob")
            R["alice"] = await render(a, "/services/dash/", "alice")
            await asyncio.sleep(12)  # pool refill
            R["bob"] = await render(bp, "/services/dash/", "bob")
            # spoofing: headers, query, cookie
            s_ctx, s = await login(b, "alice", headers={"X-S0d-Viewer": "bob", "x-s0d-token": "s0d_forged", "X-Forwarded-User": "bob"})
            await s_ctx.add_cookies([{"name": "X-S0d-Viewer", "value": "bob", "url": PUB},
                                     {"name": "jupyterhub-user", "value": "bob", "url": PUB}])
            R["alice_spoof_cold"] = await render(s, "/services/dashcold/?viewer=bob&user=bob&token=bogus", "alice_spoof")
            # unauthenticated, and a hub user without access to the service
            u_ctx = await b.new_context(); u = await u_ctx.new_page()
            r = await u.goto(f"{PUB}/services/dash/"); R["anonymous"] = {"status": r.status, "url": u.url}
            c_ctx, cp = await login(b, "carol")
            r = await cp.goto(f"{PUB}/services/dash/"); R["carol_no_role"] = {"status": r.status, "text": (await cp.inner_text("body"))[:120]}
            # kernel websocket: execute refused? cross-user access?
            kid_a = R["alice"]["kernel-id"]
            code = "import os; print(os.environ.get('HTTP_X_S0D_TOKEN'))"
            R["alice_exec_own_kernel"] = await kernel_ws(await a_ctx.cookies(), kid_a,
                [msg("kernel_info_request", {}), msg("execute_request", {"code": code, "silent": False}),
                 msg("comm_info_request", {})])
            R["bob_on_alice_kernel"] = await kernel_ws(await b_ctx.cookies(), kid_a, [msg("comm_info_request", {})])
            R["carol_on_alice_kernel"] = await kernel_ws(await c_ctx.cookies(), kid_a, [msg("comm_info_request", {})])
            R["anon_on_alice_kernel"] = await kernel_ws([], kid_a, [msg("comm_info_request", {})])
            # query websocket of an already served kernel: outsider, no cookie
            R["outsider_query_served_kernel"] = await query_listen(kid_a, 2)
            # hijack: outsider learns the pooled kernel's id (here: from the connection-file
            # names, readable by any process of the service's OS user, e.g. another dashboard kernel)
            await asyncio.sleep(12)
            d = os.path.dirname(glob.glob(f"/tmp/voila_*/kernel-{kid_a}.json")[0])
            served = {R["alice"]["kernel-id"], R["bob"]["kernel-id"]}
            files = [f for f in sorted(glob.glob(d + "/kernel-*.json"), key=os.path.getmtime)
                     if f.rsplit("kernel-", 1)[1][:-5] not in served]
            pool_kid = files[-1].rsplit("kernel-", 1)[1][:-5]
            listener = asyncio.create_task(query_listen(pool_kid, 25))
            await asyncio.sleep(1)
            # an insider on loopback, no proxy headers (e.g. another kernel of the service)
            try:
                async with websockets.connect(f"ws://127.0.0.1:{os.environ['SPIKE_PORT_DASH']}/services/dash/voila/query/{pool_kid}", open_timeout=5) as ws:
                    R["insider_direct_query"] = "connected"
            except Exception as e:
                R["insider_direct_query"] = repr(e)[:160]
            t = asyncio.create_task(render(bp, "/services/dash/", "bob_hijacked"))
            R["hijack_pool_kernel_id"] = pool_kid
            R["hijack_outsider_got"] = await listener
            try:
                R["bob_after_hijack"] = await asyncio.wait_for(t, 30)
            except Exception as e:
                R["bob_after_hijack"] = f"did not render: {e!r}"[:200]
        if which in ("all", "timing"):
            a_ctx, a = await login(b, "alice")
            warm, cold = [], []
            R["first_visits_incl_oauth"] = [(await render(a, "/services/dash/"))["seconds"], (await render(a, "/services/dashcold/"))["seconds"]]
            for i in range(4):
                await asyncio.sleep(15)
                warm.append((await render(a, "/services/dash/"))["seconds"])
                cold.append((await render(a, "/services/dashcold/"))["seconds"])
            R["timing"] = {"warm_pool": warm, "cold": cold}
        await b.close()
    out = json.dumps(R, indent=1, default=str)
    open(f"/tmp/voila-spike/result-{which}.json", "w").write(out)
    print(out)

asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "all"))
