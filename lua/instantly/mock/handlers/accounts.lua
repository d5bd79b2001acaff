--- Bespoke handlers (accounts).
return function(H, common)
  local _ = H, common
end
