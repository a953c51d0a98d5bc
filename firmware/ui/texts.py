# The LCD's words, one table per language, keyed by message id: the n-th
# line of a table is message n (the _M_* ids in firmware/ui/screens.py, in
# this order). A second language is a second table; tests/test_ui_screens.py
# checks that every table has every message and that each fits a line.
# Each table is one bytes constant: it stays in the code image (ROMFS), and
# costs the heap neither a name nor an object per message.
# The LCD's 8x8 font is ASCII: French is written without accents.
from micropython import const

_EN = const(
    b"Balance\n"   # 0 T_BALANCE
    b"Energy left\n"   # 1 T_ENERGY
    b"Days left\n"   # 2 T_DAYS
    b"Use\n"   # 3 T_USE
    b"Live power\n"   # 4 T_POWER
    b"Price\n"   # 5 T_PRICE
    b"Last top-up\n"   # 6 T_TOPUP
    b"Supply\n"   # 7 T_SUPPLY
    b"Link\n"   # 8 T_LINK
    b"Totals\n"   # 9 T_TOTALS
    b"Meter\n"   # 10 T_METER
    b"Errors\n"   # 11 T_ERRORS
    b"Supply on\n"   # 12 ON
    b"Supply off\n"   # 13 OFF
    b"No credit -\n"   # 14 NO_CREDIT
    b"please top up\n"   # 15 TOP_UP
    b"Press button\n"   # 16 PRESS
    b"to reconnect\n"   # 17 RECONNECT
    b"Friendly credit\n"   # 18 FRIENDLY
    b"until \n"   # 19 UNTIL
    b"Overload -\n"   # 20 OVERLOAD
    b"High voltage -\n"   # 21 HIGH_V
    b"Low voltage -\n"   # 22 LOW_V
    b"retry in \n"   # 23 RETRY
    b"press to retry\n"   # 24 LOCKED
    b"Disconnected\n"   # 25 UTILITY
    b"by utility\n"   # 26 BY_UTILITY
    b"Meter fault \n"   # 27 FAULT
    b"call service\n"   # 28 CALL
    b"Low credit\n"   # 29 LOW
    b"Emergency credit\n"   # 30 EC_OWED
    b"repaid at top-up\n"   # 31 REPAID
    b"All is well\n"   # 32 ALL_OK
    b"Hold: emergency\n"   # 33 HOLD_EC
    b"Hold: reconnect\n"   # 34 HOLD_RECONNECT
    b"Hold: silence\n"   # 35 HOLD_SILENCE
    b"Take emergency\n"   # 36 TAKE_EC
    b"credit of\n"   # 37 CREDIT_OF
    b"The next top-up\n"   # 38 NEXT_TOPUP
    b"repays it.\n"   # 39 REPAYS
    b"Hold = yes\n"   # 40 HOLD_YES
    b"Press = no\n"   # 41 PRESS_NO
    b"Credit given\n"   # 42 EC_TAKEN
    b"Not available:\n"   # 43 REFUSED
    b"balance not low\n"   # 44 NOT_LOW
    b"already in use\n"   # 45 IN_USE
    b"not offered\n"   # 46 DISABLED
    b"not prepaid\n"   # 47 NOT_PREPAID
    b"Reconnected\n"   # 48 RECONNECTED
    b"Alarm silenced\n"   # 49 SILENCED
    b"estimate\n"   # 50 ESTIMATE
    b"at today's price\n"   # 51 AT_PRICE
    b"days\n"   # 52 DAYS
    b"avg of \n"   # 53 AVG_OF
    b" d\n"   # 54 DAY_UNIT
    b"Today\n"   # 55 TODAY
    b"Month\n"   # 56 MONTH
    b"Sharp\n"   # 57 SHARP
    b"Peak\n"   # 58 PEAK
    b"Flat\n"   # 59 FLAT
    b"Valley\n"   # 60 VALLEY
    b"to \n"   # 61 NEXT (the period lasts to: "Valley to 08:00")
    b"Tier \n"   # 62 TIER
    b"then \n"   # 63 THEN
    b"Ref \n"   # 64 REF
    b"Token \n"   # 65 TOKEN
    b"none yet\n"   # 66 NONE_YET
    b"Signal \n"   # 67 SIGNAL
    b"Registered\n"   # 68 REG_HOME
    b"Roaming\n"   # 69 REG_ROAM
    b"Not registered\n"   # 70 REG_NO
    b"Server: up\n"   # 71 SERVER_UP
    b"Server: down\n"   # 72 SERVER_DOWN
    b"Last \n"   # 73 LAST
    b"Pending \n"   # 74 PENDING
    b"Max \n"   # 75 MAX
    b"Id \n"   # 76 ID
    b"FW \n"   # 77 FW
    b"unsynced\n"   # 78 UNSYNCED
    b"No errors\n"   # 79 NO_ERRORS
    b"to tier \n"   # 80 TO_TIER
    b"link off\n"   # 81 LINK_OFF
    b"bad language\n"   # 82 BAD_LANG
    b"Switched off\n"   # 83 TECH
    b"by technician\n"   # 84 BY_TECH
)

_FR = const(
    b"Solde\n"   # 0 T_BALANCE
    b"Energie restante\n"   # 1 T_ENERGY
    b"Jours restants\n"   # 2 T_DAYS
    b"Consommation\n"   # 3 T_USE
    b"Puissance\n"   # 4 T_POWER
    b"Prix\n"   # 5 T_PRICE
    b"Dernier credit\n"   # 6 T_TOPUP
    b"Alimentation\n"   # 7 T_SUPPLY
    b"Liaison\n"   # 8 T_LINK
    b"Index\n"   # 9 T_TOTALS
    b"Compteur\n"   # 10 T_METER
    b"Erreurs\n"   # 11 T_ERRORS
    b"Courant present\n"   # 12 ON
    b"Courant coupe\n"   # 13 OFF
    b"Plus de credit -\n"   # 14 NO_CREDIT
    b"rechargez SVP\n"   # 15 TOP_UP
    b"Appuyez pour\n"   # 16 PRESS
    b"retablir\n"   # 17 RECONNECT
    b"Credit tolere\n"   # 18 FRIENDLY
    b"jusqu'a \n"   # 19 UNTIL
    b"Surcharge -\n"   # 20 OVERLOAD
    b"Tension haute -\n"   # 21 HIGH_V
    b"Tension basse -\n"   # 22 LOW_V
    b"reessai dans \n"   # 23 RETRY
    b"appuyez: reessai\n"   # 24 LOCKED
    b"Coupe par\n"   # 25 UTILITY
    b"le fournisseur\n"   # 26 BY_UTILITY
    b"Defaut \n"   # 27 FAULT
    b"appelez service\n"   # 28 CALL
    b"Credit faible\n"   # 29 LOW
    b"Credit d'urgence\n"   # 30 EC_OWED
    b"rembourse apres\n"   # 31 REPAID
    b"Tout va bien\n"   # 32 ALL_OK
    b"Long: urgence\n"   # 33 HOLD_EC
    b"Long: retablir\n"   # 34 HOLD_RECONNECT
    b"Long: silence\n"   # 35 HOLD_SILENCE
    b"Prendre credit\n"   # 36 TAKE_EC
    b"d'urgence de\n"   # 37 CREDIT_OF
    b"Le prochain\n"   # 38 NEXT_TOPUP
    b"credit le paie\n"   # 39 REPAYS
    b"Long = oui\n"   # 40 HOLD_YES
    b"Court = non\n"   # 41 PRESS_NO
    b"Credit accorde\n"   # 42 EC_TAKEN
    b"Impossible:\n"   # 43 REFUSED
    b"solde suffisant\n"   # 44 NOT_LOW
    b"deja utilise\n"   # 45 IN_USE
    b"non propose\n"   # 46 DISABLED
    b"pas en prepaye\n"   # 47 NOT_PREPAID
    b"Courant retabli\n"   # 48 RECONNECTED
    b"Alarme coupee\n"   # 49 SILENCED
    b"estimation\n"   # 50 ESTIMATE
    b"au prix actuel\n"   # 51 AT_PRICE
    b"jours\n"   # 52 DAYS
    b"moyenne \n"   # 53 AVG_OF
    b" j\n"   # 54 DAY_UNIT
    b"Jour\n"   # 55 TODAY
    b"Mois\n"   # 56 MONTH
    b"Pointe+\n"   # 57 SHARP
    b"Pointe\n"   # 58 PEAK
    b"Plein\n"   # 59 FLAT
    b"Creuse\n"   # 60 VALLEY
    b"> \n"   # 61 NEXT ("Creuse > 08:00")
    b"Tranche \n"   # 62 TIER
    b"puis \n"   # 63 THEN
    b"Ref \n"   # 64 REF
    b"Jeton \n"   # 65 TOKEN
    b"aucun\n"   # 66 NONE_YET
    b"Signal \n"   # 67 SIGNAL
    b"Enregistre\n"   # 68 REG_HOME
    b"Itinerance\n"   # 69 REG_ROAM
    b"Non enregistre\n"   # 70 REG_NO
    b"Serveur: ok\n"   # 71 SERVER_UP
    b"Serveur: absent\n"   # 72 SERVER_DOWN
    b"Dernier \n"   # 73 LAST
    b"En attente \n"   # 74 PENDING
    b"Max \n"   # 75 MAX
    b"No \n"   # 76 ID
    b"Logiciel \n"   # 77 FW
    b"non reglee\n"   # 78 UNSYNCED
    b"Aucune erreur\n"   # 79 NO_ERRORS
    b"vers tranche \n"   # 80 TO_TIER
    b"liaison off\n"   # 81 LINK_OFF
    b"langue inconnue\n"   # 82 BAD_LANG
    b"Coupe par\n"   # 83 TECH
    b"le technicien\n"   # 84 BY_TECH
)



def get(code):
    """The table of language `code` (b"en", "fr", ...: str or bytes); None
    for one not shipped. (Compared as bytes: a str constant this short
    would cost the heap a name.)"""
    b = code.encode() if isinstance(code, str) else code
    if b == b"en":
        return _EN
    if b == b"fr":
        return _FR
    return None
