--- Bespoke handlers (leads).
return function(H, common)
  local _ = H, common
end
