-- wrk script: POST /orders against erp up (fixtures/retail.json's shops, products and customers),
-- one line of quantity 1, a fresh Idempotency-Key per request so that no retry collapses two.
--   wrk -t2 -c16 -d10s -s scripts/wrk-orders.lua http://127.0.0.1:8080
-- The API key is the shipped topology's test key; set ERP_API_KEY for another.
local api_key = os.getenv("ERP_API_KEY") or "dev-key-change-me"
local shops = {"shop_stockholm", "shop_goteborg", "shop_malmo"}
local next_thread = 0

function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_number", next_thread)
end

local sent = 0
local run_id = nil

function request()
  -- Distinct across threads (thread number) and across runs (start time and clock).
  if run_id == nil then
    run_id = string.format("%d-%d-%d", os.time(), thread_number or 0, math.floor(os.clock() * 1e6))
  end
  sent = sent + 1
  local body = string.format('{"userId":"user_%03d","shopId":"%s","items":[{"productId":"prod_%02d","quantity":1}]}',
                             sent % 100 + 1, shops[sent % #shops + 1], sent % 20 + 1)
  return wrk.format("POST", "/orders", {
    ["X-API-Key"] = api_key,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = "wrk-" .. run_id .. "-" .. sent,
  }, body)
end
