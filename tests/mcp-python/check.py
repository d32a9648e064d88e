"""The official MCP Python SDK (`mcp`, pinned in requirements.txt) against
Alumia: hosted `/mcp` over Streamable HTTP with keys of different scopes,
and `alumia mcp --stdio`. Run by ./run, which starts the server and mints
the keys. Exits non-zero on the first failed check."""

import asyncio
import json
import os
import sys

import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

URL = os.environ["ALUMIA_URL"]
BIN = os.environ["ALUMIA_BIN"]
READ_KEY = os.environ["KEY_READ"]  # mcp:read
WRITE_KEY = os.environ["KEY_WRITE"]  # mcp:read mcp:write models:read
PLAIN_KEY = os.environ["KEY_PLAIN"]  # models:read only


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"  ok  {what}")


def structured(result):
    return result.structured_content if hasattr(result, "structured_content") else result.structuredContent


def is_error(result):
    return getattr(result, "is_error", getattr(result, "isError", None))


def text(result):
    return result.content[0].text


async def with_hosted(key, body):
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        async with streamable_http_client(f"{URL}/mcp", http_client=http, terminate_on_close=False) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                info = await session.initialize()
                return await body(session, info)


async def hosted_read_only(session, info):
    print("hosted /mcp, key with mcp:read")
    check(info.server_info.name == "alumia", "serverInfo.name is alumia")
    names = [t.name for t in (await session.list_tools()).tools]
    check("agents_list" in names and "whoami" in names, "read tools are listed")
    check("agents_create" not in names and "chat_send" not in names, "write tools are hidden")
    check("models_list" not in names, "models_list needs models:read too")
    listed = await session.call_tool("agents_list", {"limit": 5})
    check(not is_error(listed), "agents_list answers")
    check(any(a["slug"] == "ala" for a in structured(listed)["items"]), "Ala is in the list")
    refused = await session.call_tool("agents_create", {"name": "Py Agent"})
    check(is_error(refused), "agents_create is refused")
    check(text(refused) == "insufficient_scope: agents_create requires mcp:write", "the refusal names the scope")
    check(structured(refused)["error"]["requiredScope"] == "mcp:write", "structuredContent carries requiredScope")
    missing = await session.call_tool("agents_get", {"id": "py-agent"})
    check(is_error(missing) and structured(missing)["error"]["code"] == "NOT_FOUND", "nothing was created")


async def hosted_read_write(session, info):
    print("hosted /mcp, key with mcp:read mcp:write models:read")
    tools = {t.name: t for t in (await session.list_tools()).tools}
    check("agents_create" in tools and "models_list" in tools, "write tools and models_list are listed")
    check(tools["agents_delete"].annotations.destructive_hint is True, "agents_delete is destructive")
    check(tools["agents_list"].annotations.read_only_hint is True, "agents_list is read-only")
    created = await session.call_tool("agents_create", {"name": "Py Agent", "systemPrompt": "be brief"})
    check(not is_error(created), "agents_create answers")
    agent = structured(created)
    check(agent["slug"] == "py-agent", "the agent has its slug")
    check(json.loads(text(created)) == agent, "the text content repeats structuredContent")
    got = await session.call_tool("agents_get", {"id": "py-agent"})
    check(structured(got)["id"] == agent["id"], "agents_get finds it")
    chat = await session.call_tool("chat_send", {"message": "hello from python", "agentId": "py-agent"})
    check(not is_error(chat), "chat_send answers")
    check(structured(chat)["text"] == "echo: hello from python", "the dev model's reply comes back")
    bad = await session.call_tool("agents_get", {"nope": 1})
    check(is_error(bad), "arguments outside the schema are a tool error")
    try:
        await session.call_tool("no_such_tool", {})
        check(False, "an unknown tool is a JSON-RPC error")
    except Exception as e:  # McpError
        check("unknown tool" in str(e) or "-32602" in str(e) or "Invalid" in str(e), f"an unknown tool is a JSON-RPC error ({e})")


async def stdio():
    print("alumia mcp --stdio, key with models:read only (no MCP-scope gating)")
    env = dict(os.environ)
    env.update({"ALUMIA_URL": URL, "ALUMIA_API_KEY": PLAIN_KEY})
    params = StdioServerParameters(command=BIN, args=["mcp", "--stdio"], env=env)
    async with stdio_client(params) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            info = await session.initialize()
            check(info.server_info.name == "alumia", "serverInfo.name is alumia")
            names = [t.name for t in (await session.list_tools()).tools]
            check("agents_create" in names and "keys_list" in names, "the full catalogue, with stdio-only tools")
            me = await session.call_tool("whoami", {})
            check(not is_error(me) and structured(me)["user"]["email"] == "ada@example.com", "whoami reads through REST")
            created = await session.call_tool("agents_create", {"name": "Stdio Agent"})
            check(not is_error(created) and structured(created)["slug"] == "stdio-agent", "a write tool works without mcp:write")
            keys = await session.call_tool("keys_list", {})
            check(not is_error(keys) and len(structured(keys)["items"]) >= 1, "keys_list lists the user's keys")
            check(all("key" not in k for k in structured(keys)["items"]), "no key secret is listed")
            ran = await session.call_tool("alumia_exec", {"args": ["agents", "list", "--json"]})
            out = structured(ran)
            check(not is_error(ran) and out["exitCode"] == 0, "alumia_exec runs a CLI command")
            check(any(a["slug"] == "stdio-agent" for a in json.loads(out["stdout"])["items"]), "its stdout is the command's")
            refused = await session.call_tool("alumia_exec", {"args": ["serve"]})
            check(is_error(refused), "alumia_exec refuses serve")
            leak = await session.call_tool("alumia_exec", {"args": ["whoami", "--url", "http://127.0.0.1:9"]})
            check(is_error(leak), "alumia_exec refuses --url (the stored key stays with this server)")


async def main():
    await with_hosted(READ_KEY, hosted_read_only)
    await with_hosted(WRITE_KEY, hosted_read_write)
    await stdio()
    print("all MCP SDK checks passed")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
