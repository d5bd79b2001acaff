--- Bespoke handlers (emails).
return function(H, common)
  local _ = H, common
end
