-- wrk script for bench/shop.sh: every request is a new buyer with an
-- Idempotency-Key of its own, buying one unit of product $PRODUCT. $RUN
-- keeps the keys of different runs apart (wrk's math.random is unseeded).
-- Keys follow a sequence, as a load generator's do; with KEYS=random they
-- are random, as clients' UUIDs are, and each order then lands on a page
-- of the shop's key index of its own.
local product = os.getenv("PRODUCT") or "1"
local run = os.getenv("RUN") or "0"
local random = os.getenv("KEYS") == "random"
local n = 0
local id = 0
function setup(thread)
  id = id + 1
  thread:set("id", id)
end
function init(args)
  prefix = "b" .. run .. "t" .. tostring(id) .. "-"
  math.randomseed((tonumber(run) or 0) + id)
end
function request()
  n = n + 1
  local user = prefix .. n
  if random then
    user = string.format("%08x-%08x-%08x", math.random(0, 2147483647), math.random(0, 2147483647), math.random(0, 2147483647))
  end
  return wrk.format("POST", "/api/orders",
    {["Content-Type"] = "application/json", ["Idempotency-Key"] = user},
    '{"product_id":' .. product .. ',"user_id":"' .. user .. '","quantity":1}')
end
