-- The environment a health script runs in: what Argo CD's scripts expect of gopher-lua (Lua 5.1
-- idioms, a safe os with time and date only, no io, no loading of files), on Lua 5.4. Called
-- once per run in a fresh Lua state: this chunk gets the Lua pattern matcher (patterns.lua) and the
-- cost above which a match uses it, and returns run(text, chunkname, obj, budget, clock).
local patterns, pattern_budget = ...
local raw_pcall, raw_xpcall, sethook, pack, unpack = pcall, xpcall, debug.sethook, table.pack, table.unpack
local TIMEOUT = setmetatable({}, {__tostring = function() return "CPU budget exceeded" end})
local timed_out = false

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

local env = {}
for _, name in ipairs({"assert", "error", "ipairs", "next", "pairs", "rawequal", "rawget", "rawlen", "rawset",
                       "select", "setmetatable", "getmetatable", "tonumber", "tostring", "type", "print"}) do
  env[name] = _G[name]
end
env._VERSION = "Lua 5.1"
env.print = function() end  -- a health script has no output

-- A script must not swallow its own timeout with pcall: the protected call ends, then it is raised again.
local function rethrow(r)
  if timed_out then error(TIMEOUT, 0) end
  return unpack(r, 1, r.n)
end
env.pcall = function(...) return rethrow(pack(raw_pcall(...))) end
env.xpcall = function(f, handler, ...) return rethrow(pack(raw_xpcall(f, handler, ...))) end
env.unpack = unpack

env.string = copy(string)
local s_find, s_match, s_gmatch, s_gsub, math_type = string.find, string.match, string.gmatch, string.gsub, math.type
-- The C matcher for what is cheap, the hooked Lua one for what could run for minutes (patterns.lua).
local function plain_int(x) return x == nil or math_type(x) == "integer" end
env.string.find = function(s, p, init, plain)
  if plain or not plain_int(init) or patterns.cheap(s, p, pattern_budget) then return s_find(s, p, init, plain) end
  return patterns.find(s, p, init)
end
env.string.match = function(s, p, init)
  if not plain_int(init) or patterns.cheap(s, p, pattern_budget) then return s_match(s, p, init) end
  return patterns.match(s, p, init)
end
env.string.gmatch = function(s, p, init)
  if not plain_int(init) or patterns.cheap(s, p, pattern_budget) then return s_gmatch(s, p, init) end
  return patterns.gmatch(s, p, init)
end
env.string.gsub = function(s, p, repl, n)
  local tr = type(repl)
  if not plain_int(n) or (tr ~= "string" and tr ~= "number" and tr ~= "table" and tr ~= "function")
     or patterns.cheap(s, p, pattern_budget) then
    return s_gsub(s, p, repl, n)
  end
  return patterns.gsub(s, p, repl, n)
end
env.string.gfind = env.string.gmatch
env.table = copy(table)
env.table.getn = function(t) return #t end
env.table.maxn = function(t)
  local n = 0
  for k in pairs(t) do if type(k) == "number" and k > n then n = k end end
  return n
end
env.math = copy(math)
env.math.pow = function(a, b) return a ^ b end
env.math.mod = math.fmod
env.math.log10 = function(x) return math.log(x, 10) end
env.math.ldexp = function(m, e) return m * 2.0 ^ e end
env.os = {time = os.time, date = os.date}
local modules = {os = env.os, string = env.string, table = env.table, math = env.math}
env.require = function(name)
  local m = modules[name]
  if m == nil then error("module '" .. tostring(name) .. "' not found: a health script may require os, string, table and math only", 2) end
  return m
end
env._G = env
-- Strings' methods ("x"):len() look in the string table the script sees.
getmetatable("").__index = env.string

-- A finalizer would run when the state is closed, outside any bound: none for scripts.
local raw_setmetatable = setmetatable
env.setmetatable = function(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("__gc metamethods are not available to health scripts", 2)
  end
  return raw_setmetatable(t, mt)
end

local function judge(fn)
  local r = pack(raw_pcall(fn))
  if timed_out then return "timeout" end
  if not r[1] then
    local e = r[2]
    if type(e) ~= "string" then e = tostring(e) end  -- a __tostring runs here, still under the hook
    return "error", e
  end
  local v = r[2]
  if type(v) ~= "table" then return "value", type(v) end
  -- rawget: an __index of the script's must not run once the hook is gone.
  local status, message = rawget(v, "status"), rawget(v, "message")
  if type(status) ~= "string" then status = "a " .. type(status) end
  if type(message) == "number" then message = tostring(message)
  elseif message ~= nil and type(message) ~= "string" then return "badmessage", type(message) end
  return "health", status, message
end

return function(text, chunkname, obj, budget, clock)
  local fn, err = load(text, chunkname, "t", env)
  if fn == nil then return "error", "syntax error: " .. tostring(err) end
  env.obj = obj
  local deadline = clock() + budget
  sethook(function()
    if timed_out or clock() > deadline then
      timed_out = true
      error(TIMEOUT, 0)
    end
  end, "", 1000)
  local ok, kind, a, b = raw_pcall(judge, fn)
  sethook()
  if timed_out then return "timeout" end
  if not ok then
    return "error", type(kind) == "string" and kind or "the script's error could not be shown"
  end
  return kind, a, b
end
