"""Language tags for HLS (``LANGUAGE`` of ``EXT-X-MEDIA``: RFC 5646) from TAMS's ``language_code`` tag (ISO 639-3,
TAMS app note 0003).

RFC 5646 takes a language's ISO 639-1 code where it has one (``en``, not ``eng``): players choose a rendition by
comparing it with the viewer's language, which they hold in that form. The table is ISO 639-3's own mapping
(the 184 languages with an ISO 639-1 code, as Debian's iso-codes lists them); any other code is its own tag.

>>> bcp47("eng"), bcp47("fra"), bcp47("bfi"), bcp47(["deu", "eng"]), bcp47(None)
('en', 'fr', 'bfi', 'de', None)
"""

from __future__ import annotations

from typing import Any, Final

#: ISO 639-3 code -> ISO 639-1 code, five letters a pair
_PAIRS: Final = (
    "aaraa abkab afraf akaak amham araar argan asmas avaav aveae aymay azeaz bakba bambm belbe benbn "
    "bisbi bodbo bosbs brebr bulbg catca cescs chach chece chucu chvcv corkw cosco crecr cymcy danda "
    "deude divdv dzodz ellel engen epoeo estet euseu eweee faofo fasfa fijfj finfi frafr fryfy fulff "
    "glagd glega glggl glvgv grngn gujgu hatht hauha hbssh hebhe herhz hinhi hmoho hrvhr hunhu hyehy "
    "iboig idoio iiiii ikuiu ileie inaia indid ipkik islis itait javjv jpnja kalkl kankn kasks katka "
    "kaukr kazkk khmkm kikki kinrw kirky komkv konkg korko kuakj kurku laolo latla lavlv limli linln "
    "litlt ltzlb lublu luglg mahmh malml marmr mkdmk mlgmg mltmt monmn mrimi msams myamy nauna navnv "
    "nblnr ndend ndong nepne nldnl nnonn nobnb norno nyany ocioc ojioj orior ormom ossos panpa plipi "
    "polpl porpt pusps quequ rohrm ronro runrn rusru sagsg sansa sinsi slksk slvsl smese smosm snasn "
    "sndsd somso sotst spaes sqisq srdsc srpsr sswss sunsu swasw swesv tahty tamta tattt telte tgktg "
    "tgltl thath tirti tonto tsntn tsots tuktk turtr twitw uigug ukruk urdur uzbuz venve vievi volvo "
    "wlnwa wolwo xhoxh yidyi yoryo zhaza zhozh zulzu "
)
ISO_639_1: Final = {pair[:3]: pair[3:] for pair in _PAIRS.split()}


def bcp47(language_code: Any) -> str | None:
    """The RFC 5646 tag of a ``language_code`` tag's value (a code, or a list of them: the first), or None."""
    code = language_code[0] if isinstance(language_code, list) and language_code else language_code
    if not isinstance(code, str) or not code.strip():
        return None
    code = code.strip().lower()
    return ISO_639_1.get(code, code)
