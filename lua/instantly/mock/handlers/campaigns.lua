--- Bespoke handlers (campaigns).
return function(H, common)
  local _ = H, common
end
