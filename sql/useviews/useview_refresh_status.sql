-- materialized: view
-- unique_key: object
-- description: When each view-layer object was last refreshed.
SELECT object, layer, refreshed_at
FROM cht_meta.refresh_state
