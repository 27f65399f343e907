-- The Lua half of slipway's runtime: the sandbox, `task`, `workflow.define` and the call wrapper.
-- It runs once per runtime with the full standard library and returns the functions Python needs;
-- scripts only ever see the `env` table it builds. Loaded by runtime.py (package data).
local host = ...

local debug_sethook, debug_getinfo, debug_traceback = debug.sethook, debug.getinfo, debug.traceback
local raw_load, xpcall, error, type, tostring, select = load, xpcall, error, type, tostring, select
local pairs, ipairs, setmetatable, getmetatable, rawequal = pairs, ipairs, setmetatable, getmetatable, rawequal
local tpack, tunpack, tconcat, floor, tointeger = table.pack, table.unpack, table.concat, math.floor, math.tointeger
local co_create, co_wrap = coroutine.create, coroutine.wrap
local now = host.now

-- Instructions between two timeout checks: rare enough to cost little, often enough to stop a
-- runaway loop within milliseconds.
local HOOK_COUNT = 10000

-- string.dump is reachable through every string's metatable, so it goes at the source.
string.dump = nil

local env = {}
for _, k in ipairs({"assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget", "rawlen",
                    "rawset", "select", "setmetatable", "getmetatable", "tonumber", "tostring", "type",
                    "xpcall", "collectgarbage"}) do
    env[k] = _G[k]
end
env._VERSION = _VERSION
env._G = env
env.string = string
env.table = table
env.math = math
env.utf8 = utf8
env.os = {time = os.time, clock = os.clock, date = os.date, difftime = os.difftime}
env.debug = {traceback = debug_traceback}

env.load = function(chunk, chunkname, mode, chunk_env)
    if mode ~= nil and mode ~= "t" then
        return nil, "load: only text chunks (mode \"t\") are allowed in slipway scripts"
    end
    if chunk_env == nil then chunk_env = env end
    return raw_load(chunk, chunkname, "t", chunk_env)
end

local function where(level)
    local info = debug_getinfo(level + 1, "Sl")
    if info and info.currentline and info.currentline > 0 then
        return info.short_src .. ":" .. info.currentline
    end
    return "?"
end

local function strings_of(sep, ...)
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do parts[i] = tostring((select(i, ...))) end
    return tconcat(parts, sep)
end

-- print, io ----------------------------------------------------------------------------------------

env.print = function(...)
    host.write_out(strings_of("\t", ...) .. "\n")
end

local function write_args(fname, ...)
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do
        local v = select(i, ...)
        local t = type(v)
        if t ~= "string" and t ~= "number" then
            error(("bad argument #%d to '%s' (string expected, got %s)"):format(i, fname, t), 3)
        end
        parts[i] = tostring(v)
    end
    return tconcat(parts)
end

local function check_formats(fname, ...)
    for i = 1, select("#", ...) do
        local f = select(i, ...)
        if type(f) == "string" then
            local c = f:gsub("^%*", ""):sub(1, 1)
            if c ~= "l" and c ~= "L" and c ~= "n" and c ~= "a" then
                error(("bad argument #%d to '%s' (invalid format)"):format(i, fname), 3)
            end
        elseif tointeger(f) == nil then
            error(("bad argument #%d to '%s' (invalid format)"):format(i, fname), 3)
        end
    end
end

local function file_object(writer, name)
    local f = {}
    f.write = function(self, ...) writer(write_args("write", ...)); return self end
    f.flush = function(self) return self end
    f.close = function() return nil, "cannot close standard " .. name end
    f.setvbuf = function() return true end
    return f
end

local stdout = file_object(host.write_out, "output")
local stderr = file_object(host.write_err, "error")
local stdin = {
    read = function(self, ...) check_formats("read", ...); return host.read(...) end,
    lines = function(self, ...)
        check_formats("lines", ...)
        local formats = tpack(...)
        return function() return host.read(tunpack(formats, 1, formats.n)) end
    end,
    close = function() return nil, "cannot close standard input" end,
}

env.io = {
    read = function(...) check_formats("read", ...); return host.read(...) end,
    write = function(...) host.write_out(write_args("write", ...)); return stdout end,
    lines = function(filename, ...)
        if filename ~= nil then
            error("io.lines: slipway scripts cannot read files; io.lines() reads standard input", 2)
        end
        return stdin:lines(...)
    end,
    stdin = stdin,
    stdout = stdout,
    stderr = stderr,
}

-- timeouts ----------------------------------------------------------------------------------------

local Timeout = {}
local active = nil -- the deadline state of the task command running now, if any

local function make_hook(state)
    return function()
        if active ~= state then
            -- A coroutine that outlived its task still carries the hook: drop it.
            debug_sethook()
            return
        end
        if now() > state.deadline then
            state.expired = true
            -- Raised again at every check, so a pcall in the task cannot keep it running.
            error(setmetatable({where = where(2)}, Timeout), 0)
        end
    end
end

-- Hooks are per coroutine: a coroutine started by a task inherits the task's deadline.
local function hooked(f)
    if type(f) ~= "function" then return f end
    return function(...)
        local state = active
        if state then debug_sethook(state.hook, "", HOOK_COUNT) end
        return f(...)
    end
end

env.coroutine = {
    create = function(f) return co_create(hooked(f)) end,
    wrap = function(f) return co_wrap(hooked(f)) end,
    resume = coroutine.resume,
    yield = coroutine.yield,
    status = coroutine.status,
    isyieldable = coroutine.isyieldable,
    running = coroutine.running,
    close = coroutine.close,
}

local function handler(e)
    if getmetatable(e) == Timeout then return e end
    local msg
    local t = type(e)
    if t == "string" or t == "number" then
        msg = tostring(e)
    elseif t == "userdata" then
        msg = tostring(e) -- a Python exception: its message
    else
        local mt = getmetatable(e)
        if mt and mt.__tostring then msg = tostring(e) else msg = "(error object is a " .. t .. " value)" end
    end
    return {message = msg, traceback = debug_traceback(msg, 2), object = t == "userdata" and e or nil}
end

-- Python calls every piece of script code through this: (ok, results, expired).
local function call(deadline, fn, ...)
    local state
    if deadline then
        state = {deadline = deadline}
        state.hook = make_hook(state)
        active = state
        debug_sethook(state.hook, "", HOOK_COUNT)
    end
    local r = tpack(xpcall(fn, handler, ...))
    if state then
        debug_sethook()
        active = nil
    end
    local expired = state ~= nil and state.expired == true
    if r[1] then return true, tpack(tunpack(r, 2, r.n)), expired end
    local e = r[2]
    if getmetatable(e) == Timeout then return false, {timeout = true, where = e.where}, true end
    return false, e, expired
end

-- task(name) --------------------------------------------------------------------------------------

local Task = {}
Task.__index = Task
Task.__tostring = function(t) return "task(" .. tostring(t.name) .. ")" end

local state_of = setmetatable({}, {__mode = "k"})
local built = {}
local by_name = {}

local function own(self, method)
    if getmetatable(self) ~= Task then
        error(("%s: call it with ':' on a task, as in task(\"deploy\"):%s(...)"):format(method, method), 3)
    end
    return state_of[self]
end

local function fail(s, what, level)
    error(("task %q: %s"):format(s.name, what), level + 1)
end

function Task.description(self, text)
    local s = own(self, "description")
    if type(text) ~= "string" then fail(s, "description: expected a string, got " .. type(text), 2) end
    s.description = text
    return self
end

function Task.command(self, fn)
    local s = own(self, "command")
    if type(fn) ~= "function" then
        fail(s, "command: expected a function(params, deps), got " .. type(fn), 2)
    end
    local info = debug_getinfo(fn, "S")
    s.command = fn
    s.command_where = info.short_src .. ":" .. info.linedefined
    return self
end

function Task.timeout(self, value)
    local s = own(self, "timeout")
    local seconds, text
    if type(value) == "number" then
        seconds, text = value, tostring(value) .. "s"
    elseif type(value) == "string" then
        local err
        seconds, err = host.parse_duration(value)
        if not seconds then fail(s, err, 2) end -- err names the setting: "timeout: ..."
        text = value
    else
        fail(s, "timeout: expected a duration such as \"30s\" or \"5m\", got " .. type(value), 2)
    end
    if seconds <= 0 then fail(s, "timeout: must be more than zero, got " .. text, 2) end
    s.timeout, s.timeout_text = seconds, text
    return self
end

function Task.retries(self, n)
    local s = own(self, "retries")
    if type(n) ~= "number" or n < 0 or n ~= floor(n) then
        fail(s, "retries: expected a whole number >= 0, got " .. tostring(n), 2)
    end
    s.retries = tointeger(n)
    return self
end

function Task.depends_on(self, ...)
    local s = own(self, "depends_on")
    local args = tpack(...)
    local function add(d)
        if type(d) == "string" and d ~= "" then
            s.depends_on[#s.depends_on + 1] = d
        elseif getmetatable(d) == Task then
            s.depends_on[#s.depends_on + 1] = d.name
        elseif d == nil then
            fail(s, "depends_on: a dependency is nil (an undefined variable?)", 3)
        else
            fail(s, "depends_on: expected a task name, a task or a list of them, got " .. type(d), 3)
        end
    end
    if args.n == 0 then fail(s, "depends_on: no dependency given", 2) end
    for i = 1, args.n do
        local d = args[i]
        if type(d) == "table" and getmetatable(d) ~= Task then
            local count = 0
            for _ in pairs(d) do count = count + 1 end
            if count ~= #d then fail(s, "depends_on: the list has holes or non-list keys (a nil entry?)", 2) end
            for j = 1, #d do add(d[j]) end
        else
            add(d)
        end
    end
    return self
end

local function callback(name)
    return function(self, fn)
        local s = own(self, name)
        if type(fn) ~= "function" then fail(s, name .. ": expected a function, got " .. type(fn), 2) end
        s[name] = fn
        return self
    end
end
Task.on_success = callback("on_success")
Task.on_failure = callback("on_failure")

function Task.build(self)
    local s = own(self, "build")
    if s.built then return self end
    if not s.command then
        fail(s, "no command; call :command(function(params, deps) ... end) before :build()", 2)
    end
    local previous = by_name[s.name]
    if previous ~= nil and previous ~= self then
        fail(s, "a task with this name is already defined (at " .. state_of[previous].where .. ")", 2)
    end
    by_name[s.name] = self
    built[#built + 1] = self
    s.built = true
    return self
end

env.task = function(name)
    if type(name) ~= "string" or name == "" then
        error("task(name): expected a non-empty string, got " .. type(name), 2)
    end
    local t = setmetatable({name = name}, Task)
    state_of[t] = {name = name, where = where(2), retries = 0, depends_on = {}, description = ""}
    return t
end

-- workflow.define(name, spec) ---------------------------------------------------------------------

local workflows = {}
local workflow_where = {}
local KNOWN = {description = true, version = true, metadata = true, tasks = true,
               on_task_start = true, on_task_complete = true, on_complete = true}

env.workflow = {
    define = function(name, spec)
        if type(name) ~= "string" or name == "" then
            error("workflow.define(name, spec): name must be a non-empty string, got " .. type(name), 2)
        end
        if spec == nil then spec = {} end
        if type(spec) ~= "table" then
            error(("workflow %q: expected a table of settings, got %s"):format(name, type(spec)), 2)
        end
        if workflow_where[name] then
            error(("workflow %q is already defined (at %s)"):format(name, workflow_where[name]), 2)
        end
        for _, k in ipairs({"on_task_start", "on_task_complete", "on_complete"}) do
            if spec[k] ~= nil and type(spec[k]) ~= "function" then
                error(("workflow %q: %s must be a function, got %s"):format(name, k, type(spec[k])), 2)
            end
        end
        if spec.tasks ~= nil and type(spec.tasks) ~= "table" then
            error(("workflow %q: tasks must be a list of tasks, got %s"):format(name, type(spec.tasks)), 2)
        end
        local unknown = {}
        for k in pairs(spec) do
            if not KNOWN[k] then unknown[#unknown + 1] = tostring(k) end
        end
        table.sort(unknown)
        workflow_where[name] = where(2)
        workflows[#workflows + 1] = {name = name, spec = spec, where = workflow_where[name], unknown = unknown}
    end,
}

-- modules -----------------------------------------------------------------------------------------

local function wrap_module(functions)
    local m = {}
    for name, fn in pairs(functions) do
        m[name] = function(...)
            local r = tpack(fn(...))
            -- A call that cannot answer (generate_diff) raises, at the line of its caller.
            if r.n == 3 and r[1] == nil and r[3] == host.RAISE then error(r[2], 2) end
            return tunpack(r, 1, r.n)
        end
    end
    return m
end

local function logger(level)
    return function(...) host.log(level, strings_of(" ", ...)) end
end

local modules = {
    gitops = wrap_module(host.gitops),
    ai = wrap_module(host.ai),
    log = {info = logger("info"), warn = logger("warn"), warning = logger("warn"),
           error = logger("error"), debug = logger("debug")},
    string = string, table = table, math = math, utf8 = utf8,
    coroutine = env.coroutine, os = env.os, io = env.io,
}
env.gitops, env.ai, env.log = modules.gitops, modules.ai, modules.log

env.require = function(name)
    if type(name) ~= "string" then
        error("bad argument #1 to 'require' (string expected, got " .. type(name) .. ")", 2)
    end
    local m = modules[name]
    if m == nil then
        error(("module %q not found: slipway scripts can require gitops, log, ai and string, table, "
               .. "math, utf8, coroutine, os, io"):format(name), 2)
    end
    return m
end

return {
    compile = function(text, chunkname) return raw_load(text, "=" .. chunkname, "t", env) end,
    call = call,
    task_state = function(t)
        if getmetatable(t) == Task then return state_of[t] end
        return nil
    end,
    task_named = function(name) return by_name[name] end,
    built = built,
    workflows = workflows,
    env = env,
}
