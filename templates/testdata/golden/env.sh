# app: rendered by patchbay from builtin:env; edits are overwritten.
export CACHE_URL=''
export DATABASE_URL='postgres://db.internal:5432/app?sslmode=require'
export ENV='production'
export MOTD='first line
second '\''single'\'' "double" $(id) `id` # not a comment \ back $HOME 	ü ✓'
export PORT='8080'
export ROUTES='http://10.0.1.4:9000/v1/,https://192.0.2.10/old%25api/,http://10.0.0.1:8080,http://10.0.0.2:8080/,http://[fd00::3]:8080'
