-- Lua's pattern matching (string.find, match, gmatch, gsub) written in Lua, after lstrlib.c. The C
-- matcher backtracks without ever reaching the debug hook, so ".-.-.-x" on a few hundred bytes runs
-- for minutes with no way to stop it; this one runs as ordinary Lua code, under the CPU budget. The
-- sandbox uses it only when a match could be costly (see cheap() below); the C one otherwise.
local byte, sub, char, c_find, concat = string.byte, string.sub, string.char, string.find, table.concat
local CAP_UNFINISHED, CAP_POSITION = -1, -2
local SPECIALS = "[%^%$%*%+%?%.%(%)%[%]%%%-]"

local do_match

local function class_end(p, pi)
  local c = byte(p, pi)
  pi = pi + 1
  if c == 37 then
    if pi > #p then error("malformed pattern (ends with '%')", 0) end
    return pi + 1
  elseif c == 91 then
    if byte(p, pi) == 94 then pi = pi + 1 end
    repeat
      if pi > #p then error("malformed pattern (missing ']')", 0) end
      local cc = byte(p, pi)
      pi = pi + 1
      if cc == 37 and pi <= #p then pi = pi + 1 end
    until byte(p, pi) == 93
    return pi + 1
  end
  return pi
end

local function match_class(c, cl)
  return c_find(char(c), "%" .. char(cl)) ~= nil
end

local function match_bracket(c, p, pi, ec)
  local sig = true
  if byte(p, pi + 1) == 94 then sig = false; pi = pi + 1 end
  pi = pi + 1
  while pi < ec do
    local pc = byte(p, pi)
    if pc == 37 then
      pi = pi + 1
      if match_class(c, byte(p, pi)) then return sig end
      pi = pi + 1
    elseif byte(p, pi + 1) == 45 and pi + 2 < ec then
      if pc <= c and c <= byte(p, pi + 2) then return sig end
      pi = pi + 3
    else
      if pc == c then return sig end
      pi = pi + 1
    end
  end
  return not sig
end

local function single_match(s, si, p, pi, ep)
  if si > #s then return false end
  local c, pc = byte(s, si), byte(p, pi)
  if pc == 46 then return true
  elseif pc == 37 then return match_class(c, byte(p, pi + 1))
  elseif pc == 91 then return match_bracket(c, p, pi, ep - 1)
  end
  return pc == c
end

local function max_expand(ms, si, pi, ep)
  local i = 0
  while single_match(ms.src, si + i, ms.pat, pi, ep) do i = i + 1 end
  while i >= 0 do
    local res = do_match(ms, si + i, ep + 1)
    if res then return res end
    i = i - 1
  end
  return nil
end

local function min_expand(ms, si, pi, ep)
  while true do
    local res = do_match(ms, si, ep + 1)
    if res then return res end
    if not single_match(ms.src, si, ms.pat, pi, ep) then return nil end
    si = si + 1
  end
end

local function start_capture(ms, si, pi, what)
  ms.level = ms.level + 1
  ms.capture[ms.level] = {init = si, len = what}
  local res = do_match(ms, si, pi)
  if res == nil then ms.level = ms.level - 1 end
  return res
end

local function end_capture(ms, si, pi)
  local l
  for i = ms.level, 1, -1 do
    if ms.capture[i].len == CAP_UNFINISHED then l = i; break end
  end
  if l == nil then error("invalid pattern capture", 0) end
  ms.capture[l].len = si - ms.capture[l].init
  local res = do_match(ms, si, pi)
  if res == nil then ms.capture[l].len = CAP_UNFINISHED end
  return res
end

local function match_balance(ms, si, pi)
  local p, s = ms.pat, ms.src
  if pi + 1 > #p then error("malformed pattern (missing arguments to '%b')", 0) end
  if si > #s or byte(s, si) ~= byte(p, pi) then return nil end
  local b, e, cont = byte(p, pi), byte(p, pi + 1), 1
  for i = si + 1, #s do
    local c = byte(s, i)
    if c == e then
      cont = cont - 1
      if cont == 0 then return i + 1 end
    elseif c == b then
      cont = cont + 1
    end
  end
  return nil
end

local function match_capture(ms, si, d)
  local l = d - 48
  if l < 1 or l > ms.level or ms.capture[l].len == CAP_UNFINISHED then
    error("invalid capture index %" .. l, 0)
  end
  local cap = ms.capture[l]
  local text = sub(ms.src, cap.init, cap.init + cap.len - 1)
  if sub(ms.src, si, si + #text - 1) == text then return si + #text end
  return nil
end

do_match = function(ms, si, pi)
  local s, p = ms.src, ms.pat
  local plen = #p
  while true do
    if pi > plen then return si end
    local pc, nc = byte(p, pi), byte(p, pi + 1)
    if pc == 40 then
      if nc == 41 then return start_capture(ms, si, pi + 2, CAP_POSITION) end
      return start_capture(ms, si, pi + 1, CAP_UNFINISHED)
    elseif pc == 41 then
      return end_capture(ms, si, pi + 1)
    elseif pc == 36 and pi == plen then
      if si == #s + 1 then return si end
      return nil
    elseif pc == 37 and nc == 98 then
      si = match_balance(ms, si, pi + 2)
      if si == nil then return nil end
      pi = pi + 4
    elseif pc == 37 and nc == 102 then
      pi = pi + 2
      if byte(p, pi) ~= 91 then error("missing '[' after '%f' in pattern", 0) end
      local ep = class_end(p, pi)
      local prev = si == 1 and 0 or byte(s, si - 1)
      local cur = si <= #s and byte(s, si) or 0
      if match_bracket(prev, p, pi, ep - 1) or not match_bracket(cur, p, pi, ep - 1) then return nil end
      pi = ep
    elseif pc == 37 and nc ~= nil and nc >= 48 and nc <= 57 then
      si = match_capture(ms, si, nc)
      if si == nil then return nil end
      pi = pi + 2
    else
      local ep = class_end(p, pi)
      local epc = byte(p, ep)
      if not single_match(s, si, p, pi, ep) then
        if epc == 42 or epc == 63 or epc == 45 then pi = ep + 1 else return nil end
      elseif epc == 63 then
        local res = do_match(ms, si + 1, ep + 1)
        if res then return res end
        pi = ep + 1
      elseif epc == 43 then return max_expand(ms, si + 1, pi, ep)
      elseif epc == 42 then return max_expand(ms, si, pi, ep)
      elseif epc == 45 then return min_expand(ms, si, pi, ep)
      else si = si + 1; pi = ep
      end
    end
  end
end

local function new_state(s, p) return {src = s, pat = p, level = 0, capture = {}} end

local function one_capture(ms, i, si, e)
  if i > ms.level then
    if i ~= 1 then error("invalid capture index %" .. i, 0) end
    return sub(ms.src, si, e - 1)
  end
  local cap = ms.capture[i]
  if cap.len == CAP_UNFINISHED then error("unfinished capture", 0) end
  if cap.len == CAP_POSITION then return cap.init end
  return sub(ms.src, cap.init, cap.init + cap.len - 1)
end

local function captures(ms, si, e, whole)
  local n = (ms.level == 0 and whole) and 1 or ms.level
  local out = {}
  for i = 1, n do out[i] = one_capture(ms, i, si, e) end
  return table.unpack(out, 1, n)
end

local function start_at(init, len)
  init = init or 1
  if init > 0 then return init elseif init == 0 or init < -len then return 1 end
  return len + init + 1
end

local M = {}

local function find_aux(find, s, p, init, plain)
  local si = start_at(init, #s)
  if si > #s + 1 then return nil end
  if find and (plain or not c_find(p, SPECIALS)) then return c_find(s, p, si, true) end
  local anchor = byte(p, 1) == 94
  local pi = anchor and 2 or 1
  repeat
    local ms = new_state(s, p)
    local e = do_match(ms, si, pi)
    if e then
      if find then return si, e - 1, captures(ms, nil, 0, false) end
      return captures(ms, si, e, true)
    end
    si = si + 1
  until anchor or si > #s + 1
  return nil
end

function M.find(s, p, init, plain) return find_aux(true, s, p, init, plain) end
function M.match(s, p, init) return find_aux(false, s, p, init, false) end

function M.gmatch(s, p, init)
  local si, last = start_at(init, #s), nil
  return function()
    while si <= #s + 1 do
      local ms = new_state(s, p)
      local e = do_match(ms, si, 1)
      if e and e ~= last then
        local start = si
        si, last = e, e
        return captures(ms, start, e, true)
      end
      si = si + 1
    end
    return nil
  end
end

local function replacement(ms, si, e, repl, tr)
  local whole = sub(ms.src, si, e - 1)
  local value
  if tr == "string" then
    local out, i = {}, 1
    while i <= #repl do
      local c = byte(repl, i)
      if c == 37 then
        i = i + 1
        local d = byte(repl, i)
        if d == 37 then out[#out + 1] = "%"
        elseif d and d >= 48 and d <= 57 then
          out[#out + 1] = d == 48 and whole or tostring(one_capture(ms, d - 48, si, e))
        else error("invalid use of '%' in replacement string", 0) end
      else
        out[#out + 1] = char(c)
      end
      i = i + 1
    end
    return concat(out)
  elseif tr == "table" then
    value = repl[one_capture(ms, 1, si, e)]
  else
    value = repl(captures(ms, si, e, true))
  end
  if not value then return whole end
  if type(value) ~= "string" and type(value) ~= "number" then
    error("invalid replacement value (a " .. type(value) .. ")", 0)
  end
  return tostring(value)
end

function M.gsub(s, p, repl, max_n)
  local tr = type(repl)
  if tr == "number" then repl = tostring(repl); tr = "string" end
  local anchor = byte(p, 1) == 94
  local pi = anchor and 2 or 1
  max_n = max_n or #s + 1
  local si, n, out, last = 1, 0, {}, nil
  while n < max_n do
    local ms = new_state(s, p)
    local e = do_match(ms, si, pi)
    if e and e ~= last then
      n = n + 1
      out[#out + 1] = replacement(ms, si, e, repl, tr)
      si, last = e, e
    elseif si <= #s then
      out[#out + 1] = sub(s, si, si)
      si = si + 1
    else
      break
    end
    if anchor then break end
  end
  out[#out + 1] = sub(s, si)
  return concat(out), n
end

-- Could the C matcher take long on this? Each repetition (*, +, -) can make it try every position
-- again: about n^(k+1)/(k+1)! steps for k of them on n bytes.
function M.cheap(s, p, budget)
  if type(s) ~= "string" or type(p) ~= "string" then return true end
  local k, i = 0, 1
  while i <= #p do
    local c = byte(p, i)
    if c == 37 then
      i = i + 2
    else
      if (c == 42 or c == 43 or c == 45) and i > 1 then k = k + 1 end
      i = i + 1
    end
  end
  local cost, n = 1, #s + 1
  for j = 1, k + 1 do cost = cost * n / j end
  return cost <= budget
end

return M
